package proxy

import (
	"context"
	"errors"
	"net"
	"time"
)

// endpoint is one listening port of an instance.
type endpoint struct {
	id, kind string
	port     int
	s        series

	// ctx ends when the endpoint stops accepting; it ends the waits for a
	// backend of its connections.
	ctx    context.Context
	cancel context.CancelFunc

	// Guarded by Proxy.mu.
	ln       *net.TCPListener // nil while not bound
	err      error            // the last failure to bind
	nextTry  time.Time
	closed   bool // removed from the proxy
	waiting  int  // accepted, no backend yet
	conns    map[*conn]struct{}
	backends map[string]int // forwarding connections by backend address
}

func newEndpoint(k epKey, port int, s series) *endpoint {
	ctx, cancel := context.WithCancel(context.Background())
	return &endpoint{id: k.id, kind: k.kind, port: port, s: s, ctx: ctx, cancel: cancel,
		conns: map[*conn]struct{}{}, backends: map[string]int{}}
}

// stopAccepting closes the listener and ends the waits; under Proxy.mu.
func (ep *endpoint) stopAccepting() {
	ep.cancel()
	if ep.ln != nil {
		_ = ep.ln.Close()
		ep.ln = nil
	}
}

// accept hands ep's connections to admit until ln is closed.
func (p *Proxy) accept(ep *endpoint, ln *net.TCPListener) {
	var delay time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http
			// does instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("proxy: accept failed", "instance", ep.id, "endpoint", ep.kind, "retry_in", delay, "err", err)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ep.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		p.admit(ep, c)
	}
}

// admit starts serving c, or closes it at once when ep holds MaxConns.
func (p *Proxy) admit(ep *endpoint, c *net.TCPConn) {
	start := time.Now()
	p.mu.Lock()
	if ep.closed || ep.ctx.Err() != nil {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	if ep.waiting+len(ep.conns) >= p.cfg.MaxConns {
		p.mu.Unlock()
		ep.s.limit.Inc() // before the close, like no_backend
		p.log.Debug("proxy: connection limit reached, closing connection",
			"instance", ep.id, "endpoint", ep.kind, "max_conns", p.cfg.MaxConns)
		_ = c.Close()
		return
	}
	ep.waiting++
	p.connWG.Add(1)
	p.mu.Unlock()
	ep.s.conns.Inc()
	go func() {
		defer p.connWG.Done()
		p.serve(ep, c, start)
	}()
}
