<?php
declare(strict_types=1);

/**
 * The nonces of accepted resets, one file each in a directory.
 *
 * A file is added with link(), which the kernel makes atomic and which fails
 * when the name exists: of two php-fpm workers that get the same signed
 * request at once, exactly one adds the file and the other sees a replay. The files
 * survive a restart of php-fpm, unlike a per-process array, and need no
 * extension (APCu) or server (Redis).
 */
final class NonceStore
{
    public function __construct(private string $dir)
    {
    }

    /**
     * Records ($keyid, $nonce) until the Unix time $until. Returns false if
     * the pair is remembered already: the request is a replay. The callback
     * shape of verify_recovery's $remember.
     */
    public function remember(string $keyid, string $nonce, int $until): bool
    {
        $path = $this->dir . '/' . hash('sha256', $keyid . "\0" . $nonce);
        // Write the time first, then link the file into place: link() fails
        // if the name exists, and a file that exists is complete.
        $tmp = tempnam($this->dir, 'tmp-');
        if ($tmp === false || file_put_contents($tmp, (string) $until) === false) {
            throw new RuntimeException('cannot record the nonce in ' . $this->dir);
        }
        $added = @link($tmp, $path);
        unlink($tmp);
        if (!$added) {
            if (!file_exists($path)) {
                throw new RuntimeException('cannot record the nonce in ' . $this->dir);
            }
            // Taken, whatever its time: the gateway signs every nonce once,
            // so a second request with it is a replay even after the first
            // one's file has expired (the window check refuses it anyway).
            return false;
        }
        $this->prune(time());
        return true;
    }

    /** Removes the files whose time is over. */
    private function prune(int $now): void
    {
        foreach (glob($this->dir . '/' . str_repeat('[0-9a-f]', 64)) ?: [] as $path) {
            $held = @file_get_contents($path);
            if ($held !== false && (int) $held < $now) {
                @unlink($path);
            }
        }
    }
}
