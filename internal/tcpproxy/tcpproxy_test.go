package tcpproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// TestProxy: relayed while up; disconnected, and new connections closed
// unanswered, while cut; relayed again after Restore, on the same port.
func TestProxy(t *testing.T) {
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					c.Write(append(s.Bytes(), '\n'))
				}
			}()
		}
	}()
	p := Start(t, echo.Addr().String())
	roundTrip := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		_, err := bufio.NewReader(c).ReadString('\n')
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	before := dial()
	if err := roundTrip(before); err != nil {
		t.Fatalf("up: %v", err)
	}
	p.Cut()
	if err := roundTrip(before); err == nil {
		t.Fatal("cut: an open connection still answers")
	}
	// The reset may come before the dial returns, or after.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		defer c.Close()
		if roundTrip(c) == nil {
			t.Fatal("cut: a new connection answers")
		}
	}
	p.Restore()
	if err := roundTrip(dial()); err != nil {
		t.Fatalf("restored: %v", err)
	}
}
