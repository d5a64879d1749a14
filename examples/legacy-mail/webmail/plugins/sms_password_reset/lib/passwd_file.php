<?php
declare(strict_types=1);

/**
 * A Dovecot passwd-file: one "user:{SCHEME}hash:uid:gid:gecos:home:shell:extra"
 * line per account. Dovecot reads it on every login that finds it changed.
 *
 * A change is written to a temporary file in the same directory and renamed
 * over the old one, under an exclusive lock on "<file>.lock": Dovecot reads
 * either the old file or the new one, never half of one, and two resets at
 * once cannot lose each other's change.
 */
final class PasswdFile
{
    /** The scheme Dovecot's passdb is told (args = scheme=BLF-CRYPT). */
    public const SCHEME = '{BLF-CRYPT}';

    public function __construct(private string $path)
    {
    }

    /** Hashes a password the way Dovecot's BLF-CRYPT checks it. */
    public static function hash(string $password): string
    {
        return self::SCHEME . password_hash($password, PASSWORD_BCRYPT, ['cost' => 10]);
    }

    /**
     * Sets the password of $account. Returns false, and changes nothing, if
     * the file has no such account, unless $create asks to add it.
     */
    public function setPassword(string $account, string $password, bool $create = false): bool
    {
        if ($account === '' || strpbrk($account, ":\r\n\0") !== false) {
            throw new InvalidArgumentException('account cannot be a passwd-file user name');
        }
        $hash = self::hash($password);

        $lock = fopen($this->path . '.lock', 'c');
        if ($lock === false || !flock($lock, LOCK_EX)) {
            throw new RuntimeException('cannot lock ' . $this->path);
        }
        try {
            clearstatcache(true, $this->path);
            $old = @file_get_contents($this->path);
            if ($old === false) {
                if (!$create || file_exists($this->path)) {
                    throw new RuntimeException('cannot read ' . $this->path);
                }
                $old = '';
            }
            $lines = $old === '' ? [] : explode("\n", rtrim($old, "\n"));
            $found = false;
            foreach ($lines as $i => $line) {
                $fields = explode(':', $line);
                if ($fields[0] === $account && count($fields) >= 2) {
                    $fields[1] = $hash;
                    $lines[$i] = implode(':', $fields);
                    $found = true;
                    break;
                }
            }
            if (!$found) {
                if (!$create) {
                    return false;
                }
                $lines[] = $account . ':' . $hash . '::::::';
            }
            $this->replace(implode("\n", $lines) . "\n");
            return true;
        } finally {
            flock($lock, LOCK_UN);
            fclose($lock);
        }
    }

    /** Writes $content to a temporary file and renames it over the file. */
    private function replace(string $content): void
    {
        $dir = dirname($this->path);
        $tmp = tempnam($dir, '.' . basename($this->path) . '.');
        if ($tmp === false) {
            throw new RuntimeException('cannot create a temporary file in ' . $dir);
        }
        try {
            $f = fopen($tmp, 'w');
            if ($f === false || fwrite($f, $content) !== strlen($content) || !fflush($f) || !fsync($f)) {
                throw new RuntimeException('cannot write ' . $tmp);
            }
            fclose($f);
            $st = @stat($this->path);
            chmod($tmp, $st !== false ? ($st['mode'] & 0777) : 0640);
            // Dovecot re-reads the file when its mtime (whole seconds) or
            // size changes. A new hash has the old one's length, so within
            // the second of the last change the mtime must move by hand.
            if ($st !== false) {
                touch($tmp, max(time(), $st['mtime'] + 1));
            }
            if (!rename($tmp, $this->path)) {
                throw new RuntimeException('cannot rename ' . $tmp);
            }
            $tmp = null;
        } finally {
            if ($tmp !== null) {
                @unlink($tmp);
            }
        }
    }
}
