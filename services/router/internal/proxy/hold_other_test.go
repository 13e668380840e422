//go:build !linux

package proxy

import "net"

// portHolder picks a free port. Unlike the Linux version it does not keep
// it: a stopped backend's port may be taken by another listener.
type portHolder struct{ port int }

func holdPort() (*portHolder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return &portHolder{port: port}, ln.Close()
}

func (h *portHolder) listen() (*net.TCPListener, error) {
	ln, err := net.Listen("tcp", addr(h.port))
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

func (h *portHolder) close() {}

// stopListening does nothing here: closing the listener has to do.
func stopListening(*net.TCPListener) error { return nil }

// reservePort returns a port that was free; it is not kept (see the Linux
// version).
func reservePort() (port int, release func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	return ln.Addr().(*net.TCPAddr).Port, func() {}, ln.Close()
}
