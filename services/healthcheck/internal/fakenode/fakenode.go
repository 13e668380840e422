// Package fakenode runs cheap loopback listeners that imitate nodes for the
// healthcheck's fault tests and its benchmark: a RESP server that answers
// AUTH, PING and INFO like a Redis primary, a blackhole that accepts and
// never answers, a listener that speaks garbage and one that resets every
// connection. It is test and benchmark support, never used by the service.
package fakenode

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
)

// Kind selects a listener's behaviour.
type Kind int

// Behaviours.
const (
	// RESP answers AUTH, PING and INFO.
	RESP Kind = iota
	// Blackhole accepts and never reads or replies.
	Blackhole
	// Garbage answers every connection with bytes that are no protocol.
	Garbage
	// Reset accepts and resets the connection at once (SO_LINGER 0).
	Reset
)

// infoReply is an INFO answer with the fields the probe reads.
var infoReply = func() []byte {
	body := "# Server\r\nuptime_in_seconds:3600\r\n" +
		"# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:1234\r\n" +
		"# Clients\r\nconnected_clients:3\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:67108864\r\n" +
		"# Stats\r\ninstantaneous_ops_per_sec:42\r\ntotal_commands_processed:99\r\n" +
		"total_net_input_bytes:5000\r\ntotal_net_output_bytes:70000\r\n"
	return []byte("$" + strconv.Itoa(len(body)) + "\r\n" + body + "\r\n")
}()

// Server is one listener with its connections.
type Server struct {
	kind Kind
	ln   net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	// Commands counts PINGs answered.
	Commands atomic.Int64
	closed   atomic.Bool
}

// Listen starts a server of kind on addr ("127.0.0.1:0" for any port).
func Listen(kind Kind, addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{kind: kind, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening and closes every connection, waiting for the
// server's goroutines to end.
func (s *Server) Close() error {
	s.closed.Store(true)
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		if s.closed.Load() {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *Server) forget(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer s.forget(c)
	switch s.kind {
	case Blackhole:
		buf := make([]byte, 512)
		for { // read and drop, never answer, until closed
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	case Garbage:
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\x00\x01garbage"))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			_, _ = c.Write([]byte("\xffnot a protocol\r\n"))
		}
	case Reset:
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return
	}
	s.serveRESP(c)
}

// serveRESP answers RESP arrays of bulk strings.
func (s *Server) serveRESP(c net.Conn) {
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriterSize(c, 4096)
	args := make([][]byte, 0, 4)
	for {
		args = args[:0]
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if len(line) < 3 || line[0] != '*' {
			return
		}
		n, _ := strconv.Atoi(string(bytes.TrimRight(line[1:], "\r\n")))
		for i := 0; i < n; i++ {
			hdr, err := r.ReadSlice('\n')
			if err != nil || len(hdr) < 3 || hdr[0] != '$' {
				return
			}
			l, _ := strconv.Atoi(string(bytes.TrimRight(hdr[1:], "\r\n")))
			arg := make([]byte, l+2)
			if _, err := readFull(r, arg); err != nil {
				return
			}
			args = append(args, arg[:l])
		}
		if len(args) == 0 {
			return
		}
		switch string(bytes.ToUpper(args[0])) {
		case "PING":
			s.Commands.Add(1)
			w.WriteString("+PONG\r\n")
		case "AUTH":
			w.WriteString("+OK\r\n")
		case "INFO":
			w.Write(infoReply)
		default:
			w.WriteString("-ERR unknown command\r\n")
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// RaiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit and returns
// the new soft limit.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}
