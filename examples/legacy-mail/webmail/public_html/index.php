<?php
declare(strict_types=1);

// A stand-in for the legacy webmail's sign-in page: mail is read over IMAP
// from Dovecot, with the password the reset endpoint writes.
header('Content-Type: text/html; charset=utf-8');
?>
<!doctype html>
<html lang="en">
<title>Example Mail</title>
<h1>Example Mail</h1>
<p>Legacy webmail: sign in with your mail client over IMAP.</p>
<p><a href="/recovery/">Forgot your password?</a></p>
</html>
