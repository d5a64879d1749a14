// Package freeport gives tests loopback TCP ports: ports that were free a
// moment ago, for servers that bind their own listeners; listening sockets
// a child process inherits, so that no port is free between choosing it
// and serving on it; and addresses nothing listens on.
// Only tests import it.
package freeport

import (
	"net"
	"os"
	"testing"
)

// Port returns a loopback port that was free a moment ago. Should another
// process take it before the server under test binds it, the server fails
// with "address already in use" and the test says so.
func Port(tb testing.TB) int {
	tb.Helper()
	ports, err := Ports(1)
	if err != nil {
		tb.Fatal(err)
	}
	return ports[0]
}

// Ports returns n loopback ports that were free a moment ago. They are
// held open together while they are chosen, so that they differ.
func Ports(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ClosedAddr returns a loopback address, host:port, nothing listens on:
// dialing it is refused.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// File listens on a free loopback port and returns the socket as a file
// for a child process to inherit (os/exec's ExtraFiles), and its port. A
// request sent before the child serves waits in the socket's backlog. The
// caller closes the file once the child has started with its own copy.
func File(tb testing.TB) (*os.File, int) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File() // a duplicate, for the child
	if err != nil {
		tb.Fatal(err)
	}
	return f, ln.Addr().(*net.TCPAddr).Port
}
