package instances

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// proxy relays TCP connections to target, so that a test can take a server
// away from its clients and give it back. cut closes every relayed
// connection and makes the proxy close each new one as soon as it is
// accepted, with a reset, as a server that has gone away would; restore
// relays again.
//
// The listener stays open from start to end. Were it closed on cut, its
// port, one of the ephemeral range, would be free for any dial to take as
// its source port: the test's own dial to the proxy could then connect to
// itself, and restore could find the port in use.
type proxy struct {
	target string
	addr   string
	ln     net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool              // cut: new connections are closed at once
	epoch int               // cuts so far; a relay begun before one ends
	conns map[net.Conn]bool // relayed connections, both sides
}

// startProxy relays a free local port to target until t ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		p.ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, epoch := p.down, p.epoch
		p.mu.Unlock()
		if down {
			refuse(c)
			continue
		}
		p.wg.Go(func() { p.relay(c, epoch) })
	}
}

// refuse closes c with a reset rather than a clean end, so that the client
// sees a failed connection, not a server that said goodbye.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// relay copies both ways between client and a new connection to target
// until either side closes or the proxy is cut. epoch is the number of
// cuts when client was accepted.
func (p *proxy) relay(client net.Conn, epoch int) {
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		refuse(client)
		return
	}
	if !p.track(epoch, client, server) {
		refuse(client)
		server.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	client.Close()
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// track records the pair unless the proxy has been cut since client was
// accepted.
func (p *proxy) track(epoch int, conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down || p.epoch != epoch {
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

// cut closes every relayed connection, with a reset, and refuses new ones
// until restore. When it returns, no connection is relayed any more.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.epoch++
	for c := range p.conns {
		refuse(c)
	}
	clear(p.conns)
}

// restore relays new connections again. It cannot fail: the port was never
// given up. The error is there for callers written for a proxy that had to
// listen again.
func (p *proxy) restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	return nil
}

// TestProxy checks the tool the outage tests rely on, against an echo
// server: relayed while up; disconnected, and new connections closed
// unanswered, while cut; relayed again after restore.
func TestProxy(t *testing.T) {
	t.Parallel()
	p := startProxy(t, startEcho(t))

	before, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if err := roundTripEcho(before); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.cut()
	// cut has closed the relayed pair, so the read ends at once.
	if err := roundTripEcho(before); err == nil {
		t.Error("a connection made before the cut still works after it")
	}
	// The proxy resets a new connection as soon as it accepts it, which
	// the dial may already see; if not, the read ends at once.
	if during, err := net.Dial("tcp", p.addr); err == nil {
		defer during.Close()
		if err := roundTripEcho(during); err == nil {
			t.Error("a connection made while cut reached the echo server")
		}
	}

	if err := p.restore(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	after, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatalf("dial after restore: %v", err)
	}
	defer after.Close()
	if err := roundTripEcho(after); err != nil {
		t.Fatalf("through the restored proxy: %v", err)
	}
}

// TestProxyHoldsItsPortWhileCut: a cut proxy keeps its port, so that no
// other socket can take it in the meantime, neither a listener nor the
// source port of a dial. When it let the port go, the test's own dial
// could pick it as its source port and connect to itself (a TCP
// self-connect, "accepted while cut"), or any dial could hold it so that
// restore failed with "address already in use".
func TestProxyHoldsItsPortWhileCut(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	p := startProxy(t, echo)
	p.cut()

	if ln, err := net.Listen("tcp", p.addr); err == nil {
		ln.Close()
		t.Error("another listener could bind the port of the cut proxy")
	}
	local, err := net.ResolveTCPAddr("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: local, Timeout: 2 * time.Second}
	if c, err := d.Dial("tcp", p.addr); err == nil {
		defer c.Close()
		if err := roundTripEcho(c); err == nil {
			t.Error("a dial from the proxy's own port reached an echo while cut")
		}
	}

	if err := p.restore(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatalf("dial after restore: %v", err)
	}
	defer c.Close()
	if err := roundTripEcho(c); err != nil {
		t.Fatalf("through the restored proxy: %v", err)
	}
}

// startEcho runs a server that echoes what it reads until t ends, and
// returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTripEcho sends a line through c and checks that it comes back.
func roundTripEcho(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		err = errors.New("echo answered " + line)
	}
	return err
}
