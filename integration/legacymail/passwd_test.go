package legacymail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
)

// setPassword runs the plugin's set-password.php, which writes the
// passwd-file with the same code as the reset endpoint.
func setPassword(file, account, password string, create bool) error {
	args := []string{"-n", setPasswordScript()}
	if create {
		args = append(args, "--create")
	}
	cmd := exec.Command("php", append(args, file, account)...)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("set-password %s: %w: %s", account, err, out)
	}
	return nil
}

func setPasswordScript() string {
	return filepath.Join(root, "examples", "legacy-mail", "webmail", "plugins", "sms_password_reset", "bin", "set-password.php")
}

// needPHP skips the test without the PHP CLI, or fails it when CI=true.
func needPHP(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("php"); err != nil {
		testenv.Missing(t, "php", "apt-get install php-fpm (which brings php-cli)", err)
	}
}

// passwdHash returns the hash field of account's line.
func passwdHash(t *testing.T, content []byte, account string) string {
	t.Helper()
	for _, line := range strings.Split(string(content), "\n") {
		fields := strings.Split(line, ":")
		if fields[0] == account && len(fields) > 1 {
			return fields[1]
		}
	}
	t.Fatalf("no line for %s in\n%s", account, content)
	return ""
}

// checkPasswords fails the test unless each account's line holds a
// BLF-CRYPT hash of its password, the form Dovecot's passdb is told to
// expect. PHP's password_verify checks them all in one process (Dovecot
// itself checks such hashes in the stack tests).
func checkPasswords(t *testing.T, content []byte, passwords map[string]string) {
	t.Helper()
	pairs := map[string]string{} // hash → password
	for account, password := range passwords {
		hash, ok := strings.CutPrefix(passwdHash(t, content, account), "{BLF-CRYPT}")
		if !ok {
			t.Errorf("the hash of %s has no {BLF-CRYPT} prefix: its change was lost?", account)
			continue
		}
		pairs[hash] = password
	}
	in, err := json.Marshal(pairs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("php", "-n", "-r", `foreach (json_decode(stream_get_contents(STDIN), true) as $h => $p) {
		if (!password_verify($p, $h)) { echo "no match for a hash of $p\n"; exit(1); }
	}`)
	cmd.Stdin = bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("checking the hashes: %v: %s", err, out)
	}
}

// TestPasswdFileWrites checks the writer the reset endpoint shares with
// set-password.php on its own, with only the PHP CLI: resets at once lose
// none of each other's changes, every change moves the file's mtime (which,
// with its size, is all Dovecot looks at), a line's other fields survive
// untouched, and a reset for an account the file lacks changes nothing.
func TestPasswdFileWrites(t *testing.T) {
	needPHP(t)
	if root == "" {
		t.Fatal(buildErr)
	}
	file := filepath.Join(t.TempDir(), "passwd")
	// A line in the form Dovecot documents, with userdb fields after the
	// hash and an extra field that holds colons itself.
	const carolRest = ":1000:1000::/home/carol::userdb_quota_rule=*:storage=1G"
	const n = 16
	account := func(i int) string { return fmt.Sprintf("user%d@example.com", i) }
	first := "carol@example.com:{PLAIN}carol-first" + carolRest + "\n"
	for i := range n {
		first += fmt.Sprintf("%s:{PLAIN}first-password-%d::::::\n", account(i), i)
	}
	if err := os.WriteFile(file, []byte(first), 0o640); err != nil {
		t.Fatal(err)
	}

	t.Run("concurrent resets", func(t *testing.T) {
		// One shell starts every writer at once: n processes of the PHP
		// CLI, as n php-fpm workers would be. (Started one by one from
		// this process they would trickle in, slowly under -race.)
		script := `pids=(); for i in $(seq 0 $(($N - 1))); do
			printf 'second-password-%d' "$i" | php -n "$SETPW" "$FILE" "user$i@example.com" & pids+=($!)
		done
		status=0; for p in "${pids[@]}"; do wait "$p" || status=1; done; exit $status`
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(os.Environ(), fmt.Sprintf("N=%d", n), "SETPW="+setPasswordScript(), "FILE="+file)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("concurrent set-password: %v\n%s", err, out)
		}
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for i := range n {
			want[account(i)] = fmt.Sprintf("second-password-%d", i)
		}
		checkPasswords(t, content, want)
		if lines := strings.Count(string(content), "\n"); lines != n+1 {
			t.Errorf("the file has %d lines, want %d:\n%s", lines, n+1, content)
		}
	})

	t.Run("every change moves the mtime", func(t *testing.T) {
		before, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := setPassword(file, account(0), fmt.Sprintf("third-password-%d", i), false); err != nil {
				t.Fatal(err)
			}
			after, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if after.Size() == before.Size() && after.ModTime().Unix() == before.ModTime().Unix() {
				t.Fatalf("change %d left size %d and mtime %v as they were: Dovecot would keep the old file", i, after.Size(), after.ModTime())
			}
			before = after
		}
	})

	t.Run("other fields survive", func(t *testing.T) {
		if err := setPassword(file, "carol@example.com", "carol-second-pw", false); err != nil {
			t.Fatal(err)
		}
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		checkPasswords(t, content, map[string]string{"carol@example.com": "carol-second-pw"})
		want := "carol@example.com:" + passwdHash(t, content, "carol@example.com") + carolRest + "\n"
		if !strings.HasPrefix(string(content), want) {
			t.Errorf("carol's line changed beyond its hash:\n%s\nwant the line\n%s", content, want)
		}
	})

	t.Run("unknown account", func(t *testing.T) {
		before, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := setPassword(file, "mallory@example.com", "mallory-password", false); err == nil {
			t.Error("set-password for an account not in the file succeeded")
		}
		if after, _ := os.ReadFile(file); !bytes.Equal(after, before) {
			t.Errorf("the file changed:\nbefore %s\nafter  %s", before, after)
		}
	})
}
