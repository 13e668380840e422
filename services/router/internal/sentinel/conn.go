package sentinel

import (
	"errors"
	"io"
	"net"
	"path"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// conn is one client connection: a goroutine reading and answering
// commands and one writing the notifications it subscribed to.
type conn struct {
	s  *Server
	nc net.Conn
	id int64

	pushes chan table.Change
	done   chan struct{}

	wmu sync.Mutex // one writer at a time on nc

	// mu guards what publish and the pusher read.
	mu       sync.Mutex
	tenant   string
	authed   bool
	proto    int
	name     string
	channels map[string]struct{}
	patterns map[string]struct{}
}

func newConn(s *Server, nc net.Conn, id int64) *conn {
	return &conn{
		s: s, nc: nc, id: id,
		pushes:   make(chan table.Change, pushQueue),
		done:     make(chan struct{}),
		proto:    2,
		channels: map[string]struct{}{},
		patterns: map[string]struct{}{},
	}
}

// serve runs the connection until the peer leaves, errs or the server
// closes it.
func (c *conn) serve() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.pushLoop()
	}()
	defer func() {
		_ = c.nc.Close()
		close(c.done)
		wg.Wait()
		c.s.forget(c)
	}()

	rd := newReader(c.nc, c.s.cfg.MaxRequestBytes)
	for {
		deadline := time.Time{}
		if !c.subscribed() {
			deadline = time.Now().Add(c.s.cfg.IdleTimeout)
		}
		if err := c.nc.SetReadDeadline(deadline); err != nil {
			return
		}
		args, err := rd.command()
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				w := c.writer()
				w.err("ERR " + pe.Error())
				_ = c.write(w.b)
				c.s.count("protocol_error", true)
				c.s.log.Debug("sentinel protocol error", "remote", c.nc.RemoteAddr().String(), "err", err)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.s.log.Debug("sentinel connection closed", "remote", c.nc.RemoteAddr().String(), "err", err)
			}
			return
		}
		if args == nil {
			continue
		}
		w := c.writer()
		quit := c.exec(w, args)
		if err := c.write(w.b); err != nil || quit {
			return
		}
	}
}

func (c *conn) writer() *writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &writer{proto: c.proto}
}

func (c *conn) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(b)
	return err
}

func (c *conn) subscribed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.channels)+len(c.patterns) > 0
}

// enqueue takes a change for this connection if its tenant owns the
// instance and it listens; a subscriber too far behind is dropped.
func (c *conn) enqueue(ch table.Change) {
	c.mu.Lock()
	wanted := c.authed && c.tenant == ch.Tenant && len(c.channels)+len(c.patterns) > 0
	c.mu.Unlock()
	if !wanted {
		return
	}
	select {
	case c.pushes <- ch:
	default:
		c.s.log.Warn("sentinel subscriber too slow, disconnecting", "remote", c.nc.RemoteAddr().String())
		_ = c.nc.Close()
	}
}

func (c *conn) pushLoop() {
	for {
		select {
		case <-c.done:
			return
		case ch := <-c.pushes:
			w, n := c.switchMessage(ch)
			if n == 0 {
				continue
			}
			if err := c.write(w.b); err != nil {
				_ = c.nc.Close()
				return
			}
			c.s.switches.Add(float64(n))
		}
	}
}

// switchChannel is the channel Sentinel announces a new primary on.
const switchChannel = "+switch-master"

// switchMessage formats ch for the subscriptions the connection holds
// now (its tenant is checked again: it may have re-authenticated).
func (c *conn) switchMessage(ch table.Change) (*writer, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &writer{proto: c.proto}
	if !c.authed || c.tenant != ch.Tenant {
		return w, 0
	}
	oldIP, oldPort := splitAddr(ch.Old)
	newIP, newPort := splitAddr(ch.New)
	payload := ch.Name + " " + oldIP + " " + oldPort + " " + newIP + " " + newPort
	n := 0
	if _, ok := c.channels[switchChannel]; ok {
		w.push(3)
		w.bulk("message")
		w.bulk(switchChannel)
		w.bulk(payload)
		n++
	}
	for p := range c.patterns {
		if ok, _ := path.Match(p, switchChannel); ok {
			w.push(4)
			w.bulk("pmessage")
			w.bulk(p)
			w.bulk(switchChannel)
			w.bulk(payload)
			n++
		}
	}
	return w, n
}

// splitAddr splits host:port; an unknown address reads as 0.0.0.0 0 so
// the space-separated message keeps its five fields.
func splitAddr(addr string) (string, string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "0.0.0.0", "0"
	}
	return host, port
}
