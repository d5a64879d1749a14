// Package tcpproxy relays TCP connections to a server, so that a test can
// take the server away from its clients and give it back without stopping
// it: a shared database stays up for every other test.
//
// It is for tests only and must never be used to serve traffic.
package tcpproxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy relays a local port to a target. Cut closes every relayed
// connection and makes the proxy close each new one as soon as it is
// accepted, with a reset, as a server that has gone away would; Restore
// relays again.
//
// The listener stays open from start to end. Were it closed on Cut, its
// port, one of the ephemeral range, would be free for any dial to take as
// its source port, and Restore could find the port in use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	down    bool              // cut: new connections are closed at once
	epoch   int               // cuts so far; a relay begun before one ends
	conns   map[net.Conn]bool // relayed connections, both sides
	relayed chan struct{}     // closed and replaced at each connection relayed
}

// Start relays a free port of 127.0.0.1 to target until tb ends.
func Start(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]bool{}, relayed: make(chan struct{})}
	p.wg.Go(p.serve)
	tb.Cleanup(func() {
		p.ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *Proxy) serve() {
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

// relay copies both ways between client and a new connection to the
// target until either side closes or the proxy is cut. epoch is the number
// of cuts when client was accepted.
func (p *Proxy) relay(client net.Conn, epoch int) {
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
func (p *Proxy) track(epoch int, conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down || p.epoch != epoch {
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	close(p.relayed)
	p.relayed = make(chan struct{})
	return true
}

// NextRelay returns a channel that is closed when the proxy next relays a
// connection to the target. A test that waits for a client to come back
// after Restore takes it, tries, and on failure waits for it: the client
// has reached the server again when it is closed.
func (p *Proxy) NextRelay() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.relayed
}

// Cut closes every relayed connection, with a reset, and refuses new ones
// until Restore. When it returns, no connection is relayed any more.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.epoch++
	for c := range p.conns {
		refuse(c)
	}
	clear(p.conns)
}

// Restore relays new connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
