<?php
declare(strict_types=1);

/**
 * Returns the account the gateway vouches for, or throws RuntimeException.
 * $headers maps lower-case names to values; $key is ['id', 'alg', 'hmac_key' or
 * 'public_key'] (base64); $now is Unix seconds. $remember($keyid, $nonce, $until)
 * records the pair until the Unix time $until and returns false if it is
 * remembered already; it must be atomic across every worker that verifies.
 */
function verify_recovery(string $method, string $path, array $headers, string $body,
                         array $key, int $now, callable $remember, int $maxSkew = 60): string
{
    $input = '/^recovery=(\("@method" "@path" "content-digest" "x-recovery-account"\)'
        . ';created=(\d{1,15});expires=(\d{1,15});nonce="([^"\\\\]{1,128})"'
        . ';keyid="([^"\\\\]*)";alg="(hmac-sha256|ed25519)";tag="sms-recovery")$/D';
    if (!preg_match($input, $headers['signature-input'] ?? '', $m)
        || !preg_match('/^recovery=:([A-Za-z0-9+\/]+={0,2}):$/D', $headers['signature'] ?? '', $s)) {
        throw new RuntimeException("no signature in the gateway's format");
    }
    [, $params, $created, $expires, $nonce, $keyid, $alg] = $m;
    $created = (int) $created;
    $expires = (int) $expires;
    if ($keyid !== $key['id'] || $alg !== $key['alg']) {
        throw new RuntimeException('unknown keyid or wrong alg');
    }
    if ($expires < $created || $expires - $created > 60) {
        throw new RuntimeException('validity window longer than 60 s');
    }
    if ($now < $created - $maxSkew || $now > $expires + $maxSkew) {
        throw new RuntimeException('outside the validity window');
    }
    $digest = 'sha-256=:' . base64_encode(hash('sha256', $body, true)) . ':';
    if (($headers['content-digest'] ?? '') !== $digest) {
        throw new RuntimeException('body does not match Content-Digest');
    }
    $account = $headers['x-recovery-account'] ?? '';
    if ($account === '') {
        throw new RuntimeException('no X-Recovery-Account');
    }
    $base = "\"@method\": $method\n\"@path\": $path\n\"content-digest\": $digest\n"
        . "\"x-recovery-account\": $account\n\"@signature-params\": $params";
    $sig = base64_decode($s[1], true);
    if ($alg === 'hmac-sha256') {
        $mac = hash_hmac('sha256', $base, base64_decode($key['hmac_key'], true), true);
        $ok = $sig !== false && hash_equals($mac, $sig);
    } else {
        $ok = $sig !== false && strlen($sig) === SODIUM_CRYPTO_SIGN_BYTES
            && sodium_crypto_sign_verify_detached($sig, $base, base64_decode($key['public_key'], true));
    }
    if (!$ok) {
        throw new RuntimeException('bad signature');
    }
    if (!$remember($keyid, $nonce, $expires + $maxSkew)) {
        throw new RuntimeException('nonce replayed');
    }
    return $account;
}
