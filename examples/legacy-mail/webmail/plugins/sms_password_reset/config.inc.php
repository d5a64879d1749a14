<?php
declare(strict_types=1);

// Settings of the sms_password_reset plugin. They come from the php-fpm
// pool's environment (env[...] lines in php-fpm.conf), so that the key stays
// out of the web root and out of version control.
return [
    // The gateway's forward key: its key_id, and either the raw 32-byte
    // Ed25519 public key in base64 (alg ed25519) or the shared HMAC key in
    // base64 (alg hmac-sha256). The algorithm is fixed here, never taken
    // from the request.
    'key' => array_filter([
        'id' => getenv('SMS_RESET_KEY_ID') ?: '',
        'alg' => getenv('SMS_RESET_ALG') ?: 'ed25519',
        'public_key' => getenv('SMS_RESET_PUBLIC_KEY') ?: null,
        'hmac_key' => getenv('SMS_RESET_HMAC_KEY') ?: null,
    ], fn ($v) => $v !== null),
    // The path the gateway forwards to (its forward { path ... }), as this
    // route's literal: the signature covers it.
    'path' => getenv('SMS_RESET_PATH') ?: '/plugins/sms_password_reset/reset.php',
    // Allowed clock difference to the gateway, in seconds.
    'max_skew' => (int) (getenv('SMS_RESET_MAX_SKEW') ?: 60),
    // Dovecot's passwd-file (its passdb args) and the directory of the
    // nonce cache; both must be writable by the php-fpm pool's user.
    'passwd_file' => getenv('SMS_RESET_PASSWD_FILE') ?: '',
    'nonce_dir' => getenv('SMS_RESET_NONCE_DIR') ?: '',
    // The new password's length in bytes: bcrypt reads at most 72.
    'password_min' => 12,
    'password_max' => 72,
];
