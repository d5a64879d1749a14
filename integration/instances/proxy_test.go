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
// away from one client and give it back: cut closes the listener and every
// relayed connection, so that new ones are refused, and restore listens
// again on the same address.
type proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy relays a free local port to target until t ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Go(func() { p.serve(ln) })
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.relay(ln, c) })
	}
}

// relay copies both ways between client and a new connection to target
// until either side closes or the proxy is cut.
func (p *proxy) relay(ln net.Listener, client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(ln, client, server) {
		client.Close()
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

// track records the pair unless the listener that accepted client has been
// cut meanwhile.
func (p *proxy) track(ln net.Listener, conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// cut stops listening and closes every relayed connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore listens again on the proxy's address.
func (p *proxy) restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.ln = ln
	p.wg.Go(func() { p.serve(ln) })
	return nil
}

// TestProxy checks the tool the outage test relies on, against an echo
// server: relayed while up, refused and disconnected while cut, relayed
// again after restore.
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
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	p := startProxy(t, echo.Addr().String())

	roundTrip := func(c net.Conn) error {
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

	before, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if err := roundTrip(before); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.cut()
	if err := roundTrip(before); err == nil {
		t.Error("a connection made before the cut still works after it")
	}
	if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted while cut")
	}

	if err := p.restore(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	after, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatalf("dial after restore: %v", err)
	}
	defer after.Close()
	if err := roundTrip(after); err != nil {
		t.Fatalf("through the restored proxy: %v", err)
	}
}
