package mail_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/freeport"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/internal/testenv"
	mailer "github.com/caddy-sms-recovery/caddy-sms-recovery/mail"
	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// dovecotConf is a rootless Dovecot with IMAP on a free port and LMTP on a
// Unix socket in its base_dir, every file in the state directory.
const dovecotConf = `instance_name = notices-@PORT@
base_dir = @STATE@/run
state_dir = @STATE@/lib
log_path = /dev/stderr
default_login_user = @USER@
default_internal_user = @USER@
default_internal_group = @GROUP@
first_valid_uid = @UID@
last_valid_uid = @UID@
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu @STATE@/passwd
}
userdb {
  driver = static
  args = uid=@USER@ gid=@GROUP@ home=@STATE@/mail/%Ld/%Ln
}
mail_location = maildir:~/Maildir
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = @PORT@
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service anvil {
  chroot =
}
`

// startDovecot runs Dovecot until t ends and returns its LMTP socket and
// IMAP address.
func startDovecot(t *testing.T) (lmtp, imapAddr string) {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot"
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "dovecot", "apt-get install dovecot-imapd dovecot-lmtpd", err)
	}
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		testenv.Missing(t, "Dovecot's LMTP service", "apt-get install dovecot-lmtpd", err)
	}
	// Dovecot runs as nobody when the test is root: its parents must be
	// open to that user, which t.TempDir's are not.
	state, err := os.MkdirTemp("", "notices-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	runAs, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	var prefix []string
	if runAs.Uid == "0" {
		if runAs, err = user.Lookup("nobody"); err != nil {
			t.Fatal(err)
		}
		prefix = []string{"setpriv", "--reuid=" + runAs.Uid, "--regid=" + runAs.Gid, "--clear-groups", "--"}
	}
	group, err := user.LookupGroupId(runAs.Gid)
	if err != nil {
		t.Fatal(err)
	}
	port := freeport.Port(t)
	conf := strings.NewReplacer("@STATE@", state, "@USER@", runAs.Username, "@GROUP@", group.Name,
		"@UID@", runAs.Uid, "@PORT@", fmt.Sprint(port)).Replace(dovecotConf)
	for _, d := range []string{"run", "lib", "mail"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"dovecot.conf": conf, "passwd": "alice@example.com:{PLAIN}alice-password\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(state, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if runAs.Uid != fmt.Sprint(os.Getuid()) {
		out, err := exec.Command("chown", "-R", runAs.Uid+":"+runAs.Gid, state).CombinedOutput()
		if err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	args := append(prefix, bin, "-F", "-c", filepath.Join(state, "dovecot.conf"))
	cmd := exec.Command(args[0], args[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	// Wait for its own word that it serves, never on a timer.
	up := make(chan error, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		var log strings.Builder
		for s.Scan() {
			log.WriteString(s.Text() + "\n")
			if strings.Contains(s.Text(), "starting up") {
				up <- nil
				io.Copy(io.Discard, stderr)
				return
			}
		}
		up <- fmt.Errorf("dovecot ended before starting up:\n%s", log.String())
	}()
	select {
	case err := <-up:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second): // a hang guard only
		t.Fatal("dovecot did not start")
	}
	return filepath.Join(state, "run", "lmtp"), fmt.Sprintf("127.0.0.1:%d", port)
}

// TestNoticeIntoDovecot delivers a notice by LMTP into a real Dovecot and
// reads it back by IMAP, as its owner's mail client would.
func TestNoticeIntoDovecot(t *testing.T) {
	t.Parallel()
	lmtp, imapAddr := startDovecot(t)
	q, o := newQueue(t, func(c *mailer.QueueConfig) {
		c.Mailbox = &mailer.Server{Protocol: mailer.LMTP, Address: "unix/" + lmtp}
		c.Tries = 1
	})
	if err := q.Mail(context.Background(), notice(recovery.MailMailbox, "alice@example.com")); err != nil {
		t.Fatal(err)
	}
	if out := o.next(t); out.Result != mailer.ResultSent {
		t.Fatalf("outcome %+v, want sent", out)
	}

	c, err := imapclient.DialInsecure(imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.com", "alice-password").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("INBOX holds %d messages, want 1", sel.NumMessages)
	}
	bodySection := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{bodySection}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	raw := msgs[0].FindBodySection(bodySection)
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != "Ihr Exämple Mail Passwort wurde geändert" {
		t.Errorf("Subject %q, %v", subject, err)
	}
	if a, err := mail.ParseAddress(m.Header.Get("From")); err != nil || a.Name != from.Name {
		t.Errorf("From %q", m.Header.Get("From"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil || !strings.Contains(string(body), "https://mail.example.com/recovery/not-me?t=abc.def") {
		t.Errorf("body %q, %v", body, err)
	}
	c.Logout().Wait()
}
