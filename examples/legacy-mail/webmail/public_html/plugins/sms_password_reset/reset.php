<?php
declare(strict_types=1);

// The route the gateway forwards resets to. The plugin itself lives outside
// the web root, so that none of its files can be requested on their own.
require dirname(__DIR__, 3) . '/plugins/sms_password_reset/sms_password_reset.php';

sms_password_reset_handle();
