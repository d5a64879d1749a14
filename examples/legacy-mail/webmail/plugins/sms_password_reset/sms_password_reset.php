<?php
declare(strict_types=1);

/*
 * sms_password_reset: the reset endpoint a webmail (Roundcube, SquirrelMail)
 * plugin adds for the sms_recovery gateway in front of it.
 *
 * The gateway forwards a reset only after the person proved they hold the
 * account's phone, and signs it (RFC 9421, docs/upstream.md). This endpoint
 * trusts X-Recovery-Account only once that signature, the body's digest,
 * the time window and the nonce are checked, then writes the new password's
 * hash into Dovecot's passwd-file. Anything else gets 401 and changes
 * nothing. The reason for a refusal goes to the PHP error log, never to the
 * client, and no password or signature is ever logged.
 */

require_once __DIR__ . '/lib/verify.php';
require_once __DIR__ . '/lib/nonce_store.php';
require_once __DIR__ . '/lib/passwd_file.php';

/** Answers a JSON body with $status and ends the request. */
function sms_password_reset_answer(int $status, array $body): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($body, JSON_UNESCAPED_SLASHES), "\n";
}

/** The new password from a JSON or form body, or null. */
function sms_password_reset_password(string $contentType, string $body): ?string
{
    $type = strtolower(trim(explode(';', $contentType)[0]));
    if ($type === 'application/json') {
        $data = json_decode($body, true);
    } elseif ($type === 'application/x-www-form-urlencoded') {
        parse_str($body, $data);
    } else {
        return null;
    }
    $password = is_array($data) ? ($data['password'] ?? null) : null;
    return is_string($password) ? $password : null;
}

function sms_password_reset_handle(): void
{
    $config = require __DIR__ . '/config.inc.php';
    if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
        header('Allow: POST');
        sms_password_reset_answer(405, ['error' => 'method_not_allowed', 'message' => 'Use POST.']);
        return;
    }
    $material = ['ed25519' => 'public_key', 'hmac-sha256' => 'hmac_key'][$config['key']['alg']] ?? null;
    if ($config['key']['id'] === '' || $material === null || !isset($config['key'][$material])
        || $config['passwd_file'] === '' || $config['nonce_dir'] === '') {
        error_log('sms_password_reset: not configured: set SMS_RESET_KEY_ID, SMS_RESET_ALG with its key, SMS_RESET_PASSWD_FILE and SMS_RESET_NONCE_DIR');
        sms_password_reset_answer(500, ['error' => 'not_configured', 'message' => 'The reset endpoint is not configured.']);
        return;
    }
    // The raw bytes, before any parsing: the digest is over them.
    $body = (string) file_get_contents('php://input', false, null, 0, 65537);
    if (strlen($body) > 65536) {
        sms_password_reset_answer(413, ['error' => 'too_large', 'message' => 'The request body is too large.']);
        return;
    }
    $headers = array_change_key_case(getallheaders(), CASE_LOWER);
    $nonces = new NonceStore($config['nonce_dir']);
    try {
        $account = verify_recovery('POST', $config['path'], $headers, $body, $config['key'], time(),
            [$nonces, 'remember'], $config['max_skew']);
    } catch (RuntimeException $e) {
        error_log('sms_password_reset: refused a reset: ' . $e->getMessage());
        sms_password_reset_answer(401, ['error' => 'invalid_signature', 'message' => 'This request does not carry a valid signature of the recovery gateway.']);
        return;
    }

    $password = sms_password_reset_password($_SERVER['CONTENT_TYPE'] ?? '', $body);
    $length = $password === null ? 0 : strlen($password);
    if ($password === null || $length < $config['password_min'] || $length > $config['password_max']
        || preg_match('//u', $password) !== 1 || preg_match('/[\x00-\x1f\x7f]/', $password)) {
        sms_password_reset_answer(400, [
            'error' => 'invalid_password',
            'message' => sprintf('The new password must be %d to %d bytes of text.', $config['password_min'], $config['password_max']),
        ]);
        return;
    }
    try {
        $changed = (new PasswdFile($config['passwd_file']))->setPassword($account, $password);
    } catch (Throwable $e) {
        error_log('sms_password_reset: cannot write the passwd-file: ' . $e->getMessage());
        sms_password_reset_answer(503, ['error' => 'unavailable', 'message' => 'The password could not be changed; try again.']);
        return;
    }
    if (!$changed) {
        error_log('sms_password_reset: signed reset for an account not in the passwd-file');
        sms_password_reset_answer(404, ['error' => 'unknown_account', 'message' => 'No mailbox has this account.']);
        return;
    }
    error_log('sms_password_reset: password changed for one account');
    sms_password_reset_answer(200, ['changed' => $account]);
}
