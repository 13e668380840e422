package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// errLostRole: the backend lost its role while the connection was dialled.
var errLostRole = errors.New("backend lost its role while connecting")

// conn is a client connection forwarding to a backend.
type conn struct {
	ep              *endpoint
	client, backend *net.TCPConn
	addr            string
	// fallback: a read-only connection placed on the primary.
	fallback bool
	since    time.Time // forwarding started
	once     sync.Once
}

// close closes both sockets, which ends both copies.
func (c *conn) close() {
	c.once.Do(func() {
		_ = c.client.Close()
		_ = c.backend.Close()
	})
}

// serve connects client to a backend of ep and forwards until either side
// ends.
func (p *Proxy) serve(ep *endpoint, client *net.TCPConn, start time.Time) {
	defer ep.s.conns.Dec()
	if err := p.cfg.Dialer.Tune(client); err != nil {
		p.log.Debug("proxy: tune client socket", "instance", ep.id, "endpoint", ep.kind, "err", err)
	}
	c, err := p.connect(ep, client, start)
	if err != nil {
		// Counted before the close: a client that sees it closed finds it
		// in the metrics.
		if !errors.Is(err, errEndpointClosed) {
			ep.s.noBack.Inc()
			p.log.Debug("proxy: no usable backend, closing connection",
				"instance", ep.id, "endpoint", ep.kind, "waited", time.Since(start), "err", err)
		}
		p.mu.Lock()
		ep.waiting--
		p.mu.Unlock()
		_ = client.Close()
		return
	}
	ep.s.wait.Observe(c.since.Sub(start).Seconds())
	ep.s.forwarded.Inc()
	p.forward(c)
	p.release(c)
}

// connect returns client's connection to a backend of ep, waiting up to
// ConnectWait from start for one: through a promotion (Switching, no
// primary) and while the backend refuses, trying again at every change of
// the instance and every redialEvery.
func (p *Proxy) connect(ep *endpoint, client *net.TCPConn, start time.Time) (*conn, error) {
	ctx, cancel := context.WithDeadline(ep.ctx, start.Add(p.cfg.ConnectWait))
	defer cancel()
	var tick *time.Ticker
	lastErr := ErrNoBackend
	for {
		if ep.ctx.Err() != nil {
			return nil, errEndpointClosed
		}
		if ctx.Err() != nil {
			return nil, lastErr
		}
		v, ok, changed := p.tbl.Watch(ep.id)
		if !ok {
			return nil, errEndpointClosed // the next sync closes the endpoint
		}
		tried := map[string]bool{}
		for ctx.Err() == nil {
			addr, fallback, ok := p.reserve(ep.kind, v, tried)
			if !ok {
				break
			}
			tried[addr] = true
			bc, err := p.dial(ctx, ep, addr, changed)
			if err != nil {
				p.unreserve(addr)
				lastErr = fmt.Errorf("%w: dial %s: %w", ErrNoBackend, addr, err)
				// Debug: while a backend is down every waiting connection
				// logs this every redialEvery; it says why a read-only
				// connection fell back to the primary.
				p.log.Debug("proxy: backend dial failed", "instance", ep.id, "endpoint", ep.kind, "backend", addr, "err", err)
				continue
			}
			c := &conn{ep: ep, client: client, backend: bc, addr: addr, fallback: fallback, since: time.Now()}
			err = p.register(c)
			if err == nil {
				return c, nil
			}
			_ = bc.Close()
			if errors.Is(err, errEndpointClosed) {
				return nil, err
			}
			lastErr = fmt.Errorf("%w: %s: %w", ErrNoBackend, addr, err)
		}
		if tick == nil {
			tick = time.NewTicker(redialEvery)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-tick.C:
		}
	}
}

// dial connects to addr, giving up when ctx ends or when a change of the
// instance (changed closes) makes addr unusable: a dial to a dead primary
// that blackholes SYNs must not hold a client through the promotion.
func (p *Proxy) dial(ctx context.Context, ep *endpoint, addr string, changed <-chan struct{}) (*net.TCPConn, error) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		for ch := changed; ; {
			select {
			case <-stop:
				return
			case <-ch:
				v, ok, next := p.tbl.Watch(ep.id)
				if !ok || !usable(ep.kind, v, addr) {
					cancel()
					return
				}
				ch = next
			}
		}
	}()
	defer func() {
		close(stop)
		<-watched
	}()
	nc, err := p.dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok { // a "tcp" dial returns a *net.TCPConn
		_ = nc.Close()
		return nil, fmt.Errorf("dial %s: %T is not a TCP connection", addr, nc)
	}
	return tc, nil
}

// reserve picks the backend for a new connection of kind under v, not one
// of tried, and counts it in p.load before the dial so that concurrent
// connections spread. Read-only: the least loaded serving replica, else
// the primary (fallback). The primary is never picked while a recovery is
// under way.
func (p *Proxy) reserve(kind string, v table.View, tried map[string]bool) (addr string, fallback, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if kind == RO {
		best := -1
		for _, r := range v.Replicas() {
			if tried[r.Address] {
				continue
			}
			if n := p.load[r.Address]; best < 0 || n < best {
				best, addr = n, r.Address
			}
		}
		if addr != "" {
			p.load[addr]++
			return addr, false, true
		}
	}
	if pr, ok := v.Primary(); ok && !v.Switching && !tried[pr.Address] {
		p.load[pr.Address]++
		return pr.Address, kind == RO, true
	}
	return "", false, false
}

func (p *Proxy) unreserve(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unreserveLocked(addr)
}

func (p *Proxy) unreserveLocked(addr string) {
	if n := p.load[addr] - 1; n > 0 {
		p.load[addr] = n
	} else {
		delete(p.load, addr)
	}
}

// register adds a dialled connection to its endpoint after checking its
// backend against the table as it is now. Both happen under p.mu, like the
// checks of a table change (enforce), so a change is either seen here or
// finds the connection registered.
func (p *Proxy) register(c *conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ep := c.ep
	if ep.closed || ep.ctx.Err() != nil {
		p.unreserveLocked(c.addr)
		return errEndpointClosed
	}
	v, ok := p.tbl.Get(ep.id)
	if !ok {
		p.unreserveLocked(c.addr)
		return errEndpointClosed
	}
	if !usable(ep.kind, v, c.addr) || !allowed(ep.kind, v, c.addr, c.fallback) {
		p.unreserveLocked(c.addr)
		return errLostRole
	}
	ep.waiting--
	ep.conns[c] = struct{}{}
	ep.backends[c.addr]++
	return nil
}

// release forgets a connection that ended.
func (p *Proxy) release(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(c.ep.conns, c)
	if n := c.ep.backends[c.addr] - 1; n > 0 {
		c.ep.backends[c.addr] = n
	} else {
		delete(c.ep.backends, c.addr)
	}
	p.unreserveLocked(c.addr)
}

// forward copies both ways until both directions have ended, then closes
// both sockets. io.Copy between two *net.TCPConn splices on Linux: the
// bytes never enter user space. A side's EOF is passed on as a half-close
// (CloseWrite) so request/response protocols that shut down their write
// side still get their answer; an error on either side closes both.
func (p *Proxy) forward(c *conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := io.Copy(c.backend, c.client)
		c.ep.s.toBackend.Add(float64(n))
		c.ended(c.backend, err)
	}()
	n, err := io.Copy(c.client, c.backend)
	c.ep.s.toClient.Add(float64(n))
	c.ended(c.client, err)
	<-done
	c.close()
}

// ended handles the end of the copy into dst.
func (c *conn) ended(dst *net.TCPConn, err error) {
	if err != nil {
		c.close()
		return
	}
	if dst.CloseWrite() != nil {
		c.close()
	}
}
