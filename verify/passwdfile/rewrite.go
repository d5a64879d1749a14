package passwdfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/verify"
)

// fileLocks serialises the rewrites of one file within this process; the
// flock on its lock file serialises them across processes.
var fileLocks sync.Map // path -> *sync.Mutex

// beforeRename, when set by a test, runs after the new file is written
// and synced and before it replaces the old one.
var beforeRename func() error

// setField replaces the password field of account's line in the
// passwd-file at path with hash, every other line and field as they
// were. It holds path's locks while it reads and rewrites, and replaces
// the file in one rename with a synced copy of the same mode and owner.
func setField(path, account, hash string) error {
	mu, _ := fileLocks.LoadOrStore(path, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // Close unlocks too

	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	updated, err := replaceLine(old, account, hash)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return replaceFile(path, updated, info)
}

// replaceLine returns content with the second field of the line whose
// first field is account set to hash.
func replaceLine(content []byte, account, hash string) ([]byte, error) {
	if account == "" || strings.ContainsAny(account, ":\n\r") {
		return nil, fmt.Errorf("%w: an account name cannot hold ':' or a line break", verify.ErrUnknownAccount)
	}
	lines := bytes.SplitAfter(content, []byte("\n"))
	for i, line := range lines {
		body := bytes.TrimRight(line, "\r\n")
		first, rest, _ := bytes.Cut(body, []byte(":"))
		if string(first) != account {
			continue
		}
		// rest is the password and the fields after it, if any.
		_, after, more := bytes.Cut(rest, []byte(":"))
		out := []byte(account + ":" + hash)
		if more {
			out = append(append(out, ':'), after...)
		}
		lines[i] = append(out, line[len(body):]...)
		return bytes.Join(lines, nil), nil
	}
	return nil, verify.ErrUnknownAccount
}

// replaceFile writes content to a new file beside path, with info's mode
// and owner and an mtime in a later second than info's, syncs it and
// renames it over path, then syncs the directory.
func replaceFile(path string, content []byte, info os.FileInfo) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		return err
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("keeping the owner of %s: %w", path, err)
		}
	}
	if _, err := tmp.Write(content); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Dovecot re-reads the file only when its mtime, in whole seconds, or
	// its size changes, and a new hash is as long as the old one: the new
	// file's mtime is a later second than the old one's, however soon
	// after it this write comes.
	mtime := time.Now()
	if least := info.ModTime().Truncate(time.Second).Add(time.Second); mtime.Before(least) {
		mtime = least
	}
	if err := os.Chtimes(tmp.Name(), mtime, mtime); err != nil {
		return err
	}
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // the rename is done; the directory's sync is best effort
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
