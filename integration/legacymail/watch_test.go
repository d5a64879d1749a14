package legacymail

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dirWatch reports files created, written or moved into a directory, through
// inotify: a test waiting for a child process to write a file wakes when it
// does, not on a timer.
type dirWatch struct{ fd int }

// watchDir watches dir until t ends. Events from the moment it returns are
// kept until wait reads them, so a write between a look and a wait is not
// missed.
func watchDir(t *testing.T, dir string) *dirWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		t.Fatalf("watching %s: %v", dir, err)
	}
	return &dirWatch{fd: fd}
}

// wait returns once something changed in the directory since the last wait
// (at once if it already has), or false when timeout passes first.
func (w *dirWatch) wait(timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, nil
		}
		// Drain what is queued: one wake for however many changes.
		buf := make([]byte, 64<<10)
		for {
			if _, err := unix.Read(w.fd, buf); err != nil {
				break // EAGAIN: nothing more queued
			}
		}
		return true, nil
	}
}
