package ldapwriter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/directory/ldaptest"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
	_ "github.com/caddy-sms-recovery/caddy-sms-recovery/verify/ldap"
)

// TestIMAPLoginAfterWrite sets a person's password with the ldap writer,
// loaded as the verifier loads it, and logs in to a Dovecot whose passdb
// is the slapd written to: the new password opens the mailbox, the old
// one is refused.
func TestIMAPLoginAfterWrite(t *testing.T) {
	dovecot := needDovecotLDAP(t)
	srv := ldaptest.Start(t)
	for _, tt := range []struct {
		name     string
		writer   string // the writer's settings beyond the server's
		authBind bool
		uid      string
		stored   string // how userPassword starts after the write
	}{
		{"replace BLF-CRYPT", `"mode": "replace", "scheme": "BLF-CRYPT"`, false, "alice", "{CRYPT}$2b$"},
		{"replace SSHA512", `"mode": "replace", "scheme": "SSHA512"`, false, "bob", "{SSHA512}"},
		{"replace SHA512-CRYPT", `"mode": "replace", "scheme": "SHA512-CRYPT"`, false, "dave", "{CRYPT}$6$"},
		{"passwd_modify", `"mode": "passwd_modify"`, true, "carol", "{SSHA}"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := startDovecot(t, dovecot, srv, tt.authBind)
			old, fresh := ldaptest.OldPassword(tt.uid), "a long and new passphrase for "+tt.uid
			if err := d.login("127.0.0.1", tt.uid, old); err != nil {
				t.Fatalf("login with the seeded password before the write: %v\n%s", err, d.log())
			}

			w := loadWriter(t, fmt.Sprintf(`{"url": %q, "bind_dn": %q, "bind_password": %q, "base_dn": %q,
				"filter": "(&(objectClass=inetOrgPerson)(uid={account}))", %s}`,
				srv.URL, ldaptest.WriterDN, ldaptest.WriterPassword, ldaptest.BaseDN, tt.writer))
			if err := w.SetPassword(t.Context(), tt.uid, fresh); err != nil {
				t.Fatal(err)
			}
			got := srv.Passwords(t)["uid="+tt.uid+","+ldaptest.BaseDN]
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.stored) {
				t.Fatalf("userPassword = %q, want one value starting %s", got, tt.stored)
			}

			if err := d.login("127.0.0.1", tt.uid, fresh); err != nil {
				t.Errorf("login with the new password: %v\n%s", err, d.log())
			}
			// From an address of its own: after a failed login Dovecot
			// slows down the next ones from the same address.
			if err := d.login("127.0.0.2", tt.uid, old); !authFailed(err) {
				t.Errorf("login with the old password = %v, want an authentication failure\n%s", err, d.log())
			}
		})
	}
}

// loadWriter loads the ldap writer from its JSON as the verifier does.
func loadWriter(t *testing.T, raw string) verify.PasswordWriter {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	t.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID(verify.WriterNamespace+".ldap", json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	return mod.(verify.PasswordWriter)
}

// needDovecotLDAP returns the path of dovecot, or skips the test (fails it
// under CI=true) when Dovecot or its LDAP driver is missing.
func needDovecotLDAP(t *testing.T) string {
	t.Helper()
	var missing []string
	dovecot, err := exec.LookPath("dovecot")
	if err != nil {
		dovecot = "/usr/sbin/dovecot"
		if _, err := os.Stat(dovecot); err != nil {
			missing = append(missing, "dovecot-imapd")
		}
	}
	if m, _ := filepath.Glob("/usr/lib/dovecot/modules/auth/libauthdb_ldap.so"); len(m) == 0 {
		missing = append(missing, "dovecot-ldap")
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("setpriv"); err != nil {
			missing = append(missing, "util-linux")
		}
	}
	if len(missing) > 0 {
		testenv.Missing(t, "Dovecot with its LDAP driver ("+strings.Join(missing, ", ")+")",
			"apt-get install "+strings.Join(missing, " "), nil)
	}
	return dovecot
}

// dovecotConf is Dovecot for one test: IMAP on 127.0.0.1 only, run by one
// unprivileged user, every file in the state directory, the passwords in
// LDAP.
const dovecotConf = `instance_name = ldapwriter-%[1]d
base_dir = %[2]s/run
state_dir = %[2]s/lib
log_path = /dev/stderr
default_login_user = %[3]s
default_internal_user = %[3]s
default_internal_group = %[4]s
first_valid_uid = %[5]s
last_valid_uid = %[5]s
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
passdb {
  driver = ldap
  args = %[2]s/dovecot-ldap.conf.ext
}
userdb {
  driver = static
  args = uid=%[3]s gid=%[4]s home=%[2]s/mail/%%Ln
}
mail_location = maildir:~/Maildir
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[1]d
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`

// ldapConf is Dovecot's LDAP passdb on the test's slapd. The seeded
// passwords are in clear, hence PLAIN for values without a {SCHEME}.
// With auth_bind = yes, Dovecot finds the user's DN as MailDN, then binds
// as it with the password given, and slapd checks it; without, it reads
// userPassword as MailDN and checks the hash itself.
const ldapConf = `uris = %[1]s
dn = %[2]s
dnpass = %[3]s
base = %[4]s
scope = subtree
auth_bind = %[5]s
pass_attrs = %[6]s
pass_filter = (&(objectClass=inetOrgPerson)(uid=%%u))
default_pass_scheme = PLAIN
`

type dovecot struct {
	imapAddr string
	out      *watchedOutput
}

// startDovecot starts a Dovecot on srv, stopped when the test ends.
func startDovecot(t *testing.T, bin string, srv *ldaptest.Server, authBind bool) *dovecot {
	t.Helper()
	// Not t.TempDir: Dovecot may run as nobody, who must be able to reach
	// the directory, so its parents must be open to all.
	state, err := os.MkdirTemp("", "ldapwriter-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })

	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	var prefix []string
	if os.Geteuid() == 0 {
		// As root Dovecot would want system users and chroots; as one
		// ordinary user it needs neither.
		if me, err = user.Lookup("nobody"); err != nil {
			t.Fatal(err)
		}
		prefix = []string{"setpriv", "--reuid=" + me.Uid, "--regid=" + me.Gid, "--clear-groups", "--"}
	}
	group, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Fatal(err)
	}
	port := freeport.Port(t)
	bind, attrs := "no", "uid=user,userPassword=password"
	if authBind {
		bind, attrs = "yes", "uid=user"
	}
	for _, dir := range []string{"run", "lib", "mail"} {
		if err := os.Mkdir(filepath.Join(state, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"dovecot.conf":          fmt.Sprintf(dovecotConf, port, state, me.Username, group.Name, me.Uid),
		"dovecot-ldap.conf.ext": fmt.Sprintf(ldapConf, srv.URL, ldaptest.MailDN, ldaptest.MailPassword, ldaptest.BaseDN, bind, attrs),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(state, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		for _, p := range []string{state, filepath.Join(state, "run"), filepath.Join(state, "lib"), filepath.Join(state, "mail")} {
			if err := os.Chown(p, atoi(t, me.Uid), atoi(t, me.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(state, 0o755); err != nil {
		t.Fatal(err)
	}

	d := &dovecot{imapAddr: fmt.Sprintf("127.0.0.1:%d", port), out: newWatchedOutput("starting up")}
	args := append(prefix, bin, "-F", "-c", filepath.Join(state, "dovecot.conf"))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	// Its own process group, so that a Dovecot that does not stop in
	// time can be killed with every process it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dovecot: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	select {
	case <-d.out.seen:
	case <-exited:
		t.Fatalf("dovecot exited at start:\n%s", d.log())
	case <-time.After(time.Minute):
		t.Fatalf("dovecot did not start within a minute:\n%s", d.log())
	}
	return d
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (d *dovecot) log() string { return d.out.String() }

// login logs in over IMAP from the loopback address ip and opens INBOX, as
// a mail client would.
func (d *dovecot) login(ip, user, password string) error {
	dialer := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := imapclient.DialInsecure(d.imapAddr, &imapclient.Options{Dialer: dialer})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return fmt.Errorf("selecting INBOX: %w", err)
	}
	return c.Logout().Wait()
}

// authFailed reports whether err is Dovecot refusing the credentials.
func authFailed(err error) bool {
	var e *imap.Error
	return errors.As(err, &e) && e.Code == imap.ResponseCodeAuthenticationFailed
}

// watchedOutput keeps what a process writes and closes seen once it has
// written want.
type watchedOutput struct {
	want string
	seen chan struct{}

	mu   sync.Mutex
	buf  bytes.Buffer
	once sync.Once
}

func newWatchedOutput(want string) *watchedOutput {
	return &watchedOutput{want: want, seen: make(chan struct{})}
}

func (o *watchedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if strings.Contains(o.buf.String(), o.want) {
		o.once.Do(func() { close(o.seen) })
	}
	return len(p), nil
}

func (o *watchedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
