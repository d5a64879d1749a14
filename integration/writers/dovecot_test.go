package writers

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
)

// dovecot is one Dovecot that serves IMAP on the loopback interface, run
// by one unprivileged user, with every file in its state directory.
type dovecot struct {
	state string
	addr  string // 127.0.0.1:<port>
	out   *watchedOutput
	cmd   *exec.Cmd
	ended chan struct{}

	// clock is the file that sets Dovecot's clock ahead of the real one,
	// by ahead seconds (libfaketime).
	clock string
	ahead int
}

// dovecotConf is Dovecot's configuration; the %[n] verbs are filled in by
// startDovecot. The passdb is the test's; no auth cache, so that a new
// password counts from the next login.
const dovecotConf = `instance_name = writers-%[1]d
base_dir = %[2]s/run
state_dir = %[2]s/lib
log_path = /dev/stderr
import_environment = TZ LD_PRELOAD FAKETIME_TIMESTAMP_FILE FAKETIME_NO_CACHE

default_login_user = %[3]s
default_internal_user = %[3]s
default_internal_group = %[4]s
first_valid_uid = %[5]d
last_valid_uid = %[5]d

protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0

%[6]s
userdb {
  driver = static
  args = uid=%[3]s gid=%[4]s home=%[2]s/mail/%%Ld/%%Ln
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

// runAs is the user Dovecot runs as: nobody when the test runs as root,
// since Dovecot as root wants system users and chroots, else the test's
// own user.
func runAs(t *testing.T) (name, group string, uid, gid int) {
	t.Helper()
	u, err := user.Current()
	if os.Geteuid() == 0 {
		u, err = user.Lookup("nobody")
	}
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return u.Username, g.Name, uid, gid
}

// newState returns a state directory for Dovecot and the files of its
// passdb, removed when t ends. Not t.TempDir: when Dovecot runs as nobody,
// who must reach the directory, its parents must be open to all.
func newState(t *testing.T) string {
	t.Helper()
	state, err := os.MkdirTemp("", "writers-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(state); err != nil {
			t.Logf("removing %s: %v", state, err)
		}
	})
	for _, d := range []string{"run", "lib", "mail", "auth"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(state, "run"), 0o755); err != nil { // as Dovecot wants its base_dir
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o711); err != nil {
		t.Fatal(err)
	}
	return state
}

// startDovecot starts Dovecot in state with passdb, a passdb { } block,
// and waits until it serves. Every file in state belongs to Dovecot's
// user by then. Dovecot stops when t ends.
func startDovecot(t *testing.T, state, passdb string) *dovecot {
	t.Helper()
	bin, err := dovecotBin()
	if err != nil {
		t.Fatal(err)
	}
	faketime, err := fakeTimeLib()
	if err != nil {
		t.Fatal(err)
	}
	name, group, uid, gid := runAs(t)
	port := freeport.Port(t)
	d := &dovecot{
		state: state,
		addr:  fmt.Sprintf("127.0.0.1:%d", port),
		out:   newWatchedOutput("starting up"),
		ended: make(chan struct{}),
		clock: filepath.Join(state, "clock"),
	}
	conf := filepath.Join(state, "dovecot.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, dovecotConf, port, state, name, group, uid, passdb), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.clock, []byte("+0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		err := filepath.Walk(state, func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var args []string
	if os.Geteuid() == 0 {
		args = []string{"setpriv", "--reuid=" + name, "--regid=" + group, "--clear-groups", "--"}
	}
	args = append(args, "env", "LD_PRELOAD="+faketime, "FAKETIME_TIMESTAMP_FILE="+d.clock, "FAKETIME_NO_CACHE=1",
		bin, "-F", "-c", conf)
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	// Its own process group, so that a Dovecot that does not stop in time
	// is killed with every process it started.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting Dovecot: %v", err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.ended)
	}()
	t.Cleanup(func() { d.stop(t) })
	select {
	case <-d.out.seen:
	case <-d.ended:
		t.Fatalf("Dovecot exited before it served:\n%s", d.out)
	case <-time.After(time.Minute):
		t.Fatalf("Dovecot did not start within a minute:\n%s", d.out)
	}
	return d
}

// stop sends Dovecot SIGTERM and kills its process group if it has not
// ended within 30 seconds.
func (d *dovecot) stop(t *testing.T) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.ended:
	case <-time.After(30 * time.Second):
		t.Errorf("Dovecot did not stop within 30s; killing its process group")
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.ended
	}
	if t.Failed() {
		t.Logf("Dovecot's log:\n%s", d.out)
	}
}

// nextSecond moves Dovecot's clock on by a second. Dovecot looks at a
// passwd-file at most once a second of its clock: a file replaced in the
// second of its last lookup goes unseen until a lookup in a later second,
// which a person typing their new password always makes. Moving the clock
// stands in for that wait.
func (d *dovecot) nextSecond(t *testing.T) {
	t.Helper()
	d.ahead++
	tmp := d.clock + ".new" // written whole and renamed in, never read half
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "+%d\n", d.ahead), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.clock); err != nil {
		t.Fatal(err)
	}
}

// failedLoginFrom is the client address of logins meant to fail. After a
// failed login Dovecot slows down the next ones from the same address for
// a while (its auth penalty); from an address of their own they do not
// slow down the logins that must work.
const failedLoginFrom = "127.0.0.2"

// login logs in over IMAP from the loopback address ip and opens INBOX, as
// a mail client would.
func (d *dovecot) login(ip, user, password string) error {
	dialer := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := imapclient.DialInsecure(d.addr, &imapclient.Options{Dialer: dialer})
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

// checkPasswords checks that account logs in with good and not with bad.
func (d *dovecot) checkPasswords(t *testing.T, account, good, bad string) {
	t.Helper()
	if err := d.login("127.0.0.1", account, good); err != nil {
		t.Fatalf("IMAP login of %s with the password that should work: %v", account, err)
	}
	var e *imap.Error
	if err := d.login(failedLoginFrom, account, bad); !errors.As(err, &e) || e.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("IMAP login of %s with the password that should not work: %v, want AUTHENTICATIONFAILED", account, err)
	}
}

// watchedOutput collects a process's output and closes seen once want
// has been written.
type watchedOutput struct {
	want []byte
	seen chan struct{}

	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func newWatchedOutput(want string) *watchedOutput {
	return &watchedOutput{want: []byte(want), seen: make(chan struct{})}
}

func (o *watchedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if !o.done && bytes.Contains(o.buf.Bytes(), o.want) {
		o.done = true
		close(o.seen)
	}
	return len(p), nil
}

func (o *watchedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
