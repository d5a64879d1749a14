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
	p := Start(t, startEcho(t))
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

// TestProxyHoldsItsPortWhileCut: a cut proxy keeps its port, so that no
// other socket can take it in the meantime, neither a listener nor the
// source port of a dial. When it let the port go, a test's own dial could
// pick it as its source port and connect to itself (a TCP self-connect), or
// any dial could hold it so that the port could not be listened on again.
func TestProxyHoldsItsPortWhileCut(t *testing.T) {
	t.Parallel()
	p := Start(t, startEcho(t))
	p.Cut()
	if ln, err := net.Listen("tcp", p.Addr()); err == nil {
		ln.Close()
		t.Error("another listener could bind the port of the cut proxy")
	}
	local, err := net.ResolveTCPAddr("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: local, Timeout: 2 * time.Second}
	if c, err := d.Dial("tcp", p.Addr()); err == nil {
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("ping\n"))
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			t.Error("a dial from the proxy's own port reached the echo server while cut")
		}
	}
}

// startEcho runs a line echo server until t ends and returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
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
	return echo.Addr().String()
}

// TestNextRelay: the channel closes when a connection is relayed, and not
// for one refused while cut.
func TestNextRelay(t *testing.T) {
	t.Parallel()
	p := Start(t, startEcho(t))
	echo := func() error {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	}
	p.Cut()
	refused := p.NextRelay()
	if echo() == nil {
		t.Fatal("cut: a new connection answers")
	}
	p.Restore()
	relayed := p.NextRelay()
	if refused != relayed {
		t.Fatal("a refused connection counted as relayed")
	}
	if err := echo(); err != nil {
		t.Fatalf("restored: %v", err)
	}
	select {
	case <-relayed: // the echo could only answer once relayed
	default:
		t.Fatal("NextRelay's channel is still open after a relayed connection")
	}
	if p.NextRelay() == relayed {
		t.Error("NextRelay did not move on to the next connection")
	}
}
