package passwdfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	cf "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

const users = `# Dovecot users
alice@example.com:{PLAIN}old:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G
alice@example.com.evil:{PLAIN}x:1001:1001::/home/evil::

bob@example.com:{PLAIN}bob
carol@example.com`

// writeUsers makes a passwd-file of mode 0640 and returns its path.
func writeUsers(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func field(t *testing.T, path, account string, n int) string {
	t.Helper()
	b, _ := os.ReadFile(path)
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Split(line, ":"); f[0] == account {
			if n >= len(f) {
				return ""
			}
			return f[n]
		}
	}
	t.Fatalf("no line for %s in %s", account, b)
	return ""
}

func TestRewriteKeepsEverythingElse(t *testing.T) {
	for _, tc := range []struct{ account, hash, want string }{
		{"alice@example.com", "{X}new", strings.Replace(users, "{PLAIN}old", "{X}new", 1)},
		{"bob@example.com", "{X}new", strings.Replace(users, "{PLAIN}bob", "{X}new", 1)},
		{"carol@example.com", "{X}new", strings.Replace(users, "carol@example.com", "carol@example.com:{X}new", 1)},
	} {
		got, err := replaceLine([]byte(users), tc.account, tc.hash)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.account, got, tc.want)
		}
	}
	got, _ := replaceLine([]byte("a:old\r\nb:x\r\n"), "a", "new")
	if string(got) != "a:new\r\nb:x\r\n" {
		t.Errorf("CRLF: got %q", got)
	}
}

func TestUnknownAccountWritesNothing(t *testing.T) {
	path := writeUsers(t, users)
	w := &Writer{Path: path, Scheme: "SSHA512"}
	for _, account := range []string{"alice", "dave@example.com", "alice@example.com:", "x\nalice@example.com", ""} {
		if err := w.SetPassword(context.Background(), account, "pw"); !errors.Is(err, verify.ErrUnknownAccount) {
			t.Errorf("%q: err = %v, want ErrUnknownAccount", account, err)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != users {
		t.Fatalf("file changed:\n%s", b)
	}
}

func TestSetPasswordKeepsModeAndDovecotReadsIt(t *testing.T) {
	path := writeUsers(t, users)
	w := &Writer{Path: path, Scheme: "SSHA512"}
	if err := w.SetPassword(context.Background(), "alice@example.com", "a new passphrase"); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", info.Mode().Perm())
	}
	if got := field(t, path, "alice@example.com", 7); got != "userdb_quota_rule=*" {
		t.Errorf("extra fields changed: %q", got)
	}
	if b, _ := os.ReadFile(path); strings.Count(string(b), "{PLAIN}") != 2 {
		t.Errorf("other lines changed:\n%s", b)
	}
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		testenv.Missing(t, "Dovecot's doveadm, which checks the written hash", "apt-get install dovecot-core", err)
		return
	}
	hash := field(t, path, "alice@example.com", 1)
	if out, err := exec.Command(doveadm, "pw", "-t", hash, "-p", "a new passphrase").CombinedOutput(); err != nil {
		t.Fatalf("doveadm refused the written hash: %v: %s", err, out)
	}
}

// TestConcurrentWritesSerialised writes many accounts at once: if two
// rewrites interleaved, one would start from a copy without the other's
// change and undo it.
// TestEachWriteMovesTheMtime: Dovecot re-reads a passwd-file only when its
// mtime, in whole seconds, or its size changes, and a new hash has the old
// one's length. Every rewrite must therefore move the mtime on by at least
// a second, even when the old file's is in this second or ahead of the
// clock; otherwise a second reset within a second, once Dovecot has read
// the first, would not be seen, and the old password would keep working.
func TestEachWriteMovesTheMtime(t *testing.T) {
	path := writeUsers(t, users)
	ahead := time.Now().Add(10 * time.Second).Truncate(time.Second)
	if err := os.Chtimes(path, ahead, ahead); err != nil {
		t.Fatal(err)
	}
	last := ahead
	for i := range 3 {
		if err := setField(path, "alice@example.com", fmt.Sprintf("{X}new%d", i)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().Unix() <= last.Unix() {
			t.Fatalf("write %d: mtime %v, want a later second than %v", i, fi.ModTime(), last)
		}
		last = fi.ModTime()
	}
}

func TestConcurrentWritesSerialised(t *testing.T) {
	var b strings.Builder
	const n = 40
	for i := range n {
		fmt.Fprintf(&b, "u%d:{PLAIN}old:%d:%d::/home/u%d::\n", i, i, i, i)
	}
	path := writeUsers(t, b.String())
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := setField(path, fmt.Sprintf("u%d", i), fmt.Sprintf("{X}new%d", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if got := field(t, path, fmt.Sprintf("u%d", i), 1); got != fmt.Sprintf("{X}new%d", i) {
			t.Errorf("u%d: password %q, a rewrite was lost", i, got)
		}
	}
}

// TestFailedRewriteLeavesTheOldFile stops a rewrite just before its
// rename, as a crash would: the old file must stand whole, with no copy
// left beside it.
func TestFailedRewriteLeavesTheOldFile(t *testing.T) {
	path := writeUsers(t, users)
	beforeRename = func() error { return errors.New("crash") }
	t.Cleanup(func() { beforeRename = nil })
	if err := setField(path, "alice@example.com", "{X}new"); err == nil {
		t.Fatal("no error")
	}
	if b, _ := os.ReadFile(path); string(b) != users {
		t.Fatalf("file changed:\n%s", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".new-") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func TestCaddyfile(t *testing.T) {
	var h verify.Handler
	if err := h.UnmarshalCaddyfile(cf.NewTestDispenser(`sms_recovery_verify {
		key_id gw1
		password passwd_file /etc/dovecot/users {
			scheme ARGON2ID
		}
	}`)); err != nil {
		t.Fatal(err)
	}
	if want := `{"path":"/etc/dovecot/users","scheme":"ARGON2ID","writer":"passwd_file"}`; string(h.WriterRaw) != want {
		t.Fatalf("write = %s, want %s", h.WriterRaw, want)
	}
	for bad, want := range map[string]string{
		"passwd_file":                    "a path is required",
		"passwd_file /a /b":              "wrong argument count",
		"passwd_file /a {\n schema X\n}": "schema",
	} {
		err := h.UnmarshalCaddyfile(cf.NewTestDispenser("sms_recovery_verify {\n password " + bad + "\n}"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", bad, err, want)
		}
	}
	if err := (&Writer{Path: "/x", Scheme: "MD5-CRYPT"}).Provision(caddy.Context{}); err == nil {
		t.Error("MD5-CRYPT provisioned")
	}
}
