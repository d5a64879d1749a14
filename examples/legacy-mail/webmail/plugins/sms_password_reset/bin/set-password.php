<?php
declare(strict_types=1);

// Sets an account's password in a Dovecot passwd-file, the way the reset
// endpoint does; the password is read from standard input.
//
//   php set-password.php [--create] <passwd-file> <account> < password.txt

require_once dirname(__DIR__) . '/lib/passwd_file.php';

$args = array_slice($argv, 1);
$create = ($args[0] ?? '') === '--create';
if ($create) {
    array_shift($args);
}
if (PHP_SAPI !== 'cli' || count($args) !== 2) {
    fwrite(STDERR, "usage: php set-password.php [--create] <passwd-file> <account> < password\n");
    exit(2);
}
[$file, $account] = $args;
$password = rtrim((string) stream_get_contents(STDIN), "\r\n");
if ($password === '') {
    fwrite(STDERR, "set-password: no password on standard input\n");
    exit(2);
}
if (!(new PasswdFile($file))->setPassword($account, $password, $create)) {
    fwrite(STDERR, "set-password: no account $account in $file (use --create to add it)\n");
    exit(1);
}
