// Package proxy is the router's data plane: for every instance in the table
// a read-write TCP endpoint forwarding to the current primary and a
// read-only endpoint spreading connections over the serving replicas (least
// connections, the primary when there is none). It follows the table: a new
// connection waits through a promotion, a connection to a node that lost its
// role is closed so the client reconnects to the new one, and an endpoint
// goes away with its instance.
//
// It forwards bytes and nothing else: no protocol is parsed, so a client
// authenticates with the engine itself, and the kernel moves the data
// (splice) between the two sockets. It is not a connection pool or a query
// router.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// Endpoint kinds.
const (
	RW = "rw"
	RO = "ro"
)

// redialEvery is how often a waiting connection dials again without a table
// change: a primary restarted in place comes back with no event.
const redialEvery = 100 * time.Millisecond

var (
	// ErrNoBackend is why a connection found nothing usable within
	// ConnectWait.
	ErrNoBackend = errors.New("no usable backend")
	// errEndpointClosed: the endpoint went away (instance removed, port
	// changed, shutdown) while the connection waited.
	errEndpointClosed = errors.New("endpoint closed")
)

type epKey struct{ id, kind string }

// instState is what the proxy remembers of a served instance between table
// changes.
type instState struct {
	gen uint64 // the view last enforced
}

// Proxy serves the table's endpoints. Run it once.
type Proxy struct {
	cfg Config
	tbl *table.Table
	m   *Metrics
	log *slog.Logger

	dialer  *net.Dialer
	started atomic.Bool

	// acceptWG counts accept loops, connWG client connections; Run waits
	// for both.
	acceptWG sync.WaitGroup
	connWG   sync.WaitGroup

	mu      sync.Mutex
	closing bool // Run's context ended: no new listeners
	eps     map[epKey]*endpoint
	insts   map[string]*instState
	// load counts this router's connections per backend address, dials
	// under way included, for least-connections.
	load map[string]int
}

// New returns a proxy over tbl. Zero fields of cfg take the defaults.
func New(cfg Config, tbl *table.Table, m *Metrics, log *slog.Logger) (*Proxy, error) {
	if tbl == nil || m == nil || log == nil {
		return nil, errors.New("proxy: nil table, metrics or logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Proxy{
		cfg: cfg, tbl: tbl, m: m, log: log,
		dialer: cfg.Dialer.Dialer(),
		eps:    map[epKey]*endpoint{},
		insts:  map[string]*instState{},
		load:   map[string]int{},
	}, nil
}

// Run serves until ctx ends, then stops accepting, lets open connections
// go on for DrainTimeout, closes what remains and returns once every
// goroutine it started has ended. A port that cannot be bound is retried
// every ListenRetry; it never fails Run.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("proxy: Run called twice")
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	var sweepWG sync.WaitGroup
	if p.cfg.IdleTimeout > 0 {
		if !idleSupported {
			p.log.Warn("proxy: idle timeout not supported on this platform; idle connections stay open")
		}
		sweepWG.Add(1)
		go func() {
			defer sweepWG.Done()
			p.sweep(sweepCtx)
		}()
	}
	defer func() {
		stopSweep()
		sweepWG.Wait()
	}()
	// Primary changes are taken as the table announces them, one by one:
	// sync sees only the latest state, and two quick switches (there and
	// back) must still count twice and cut the connections to the node
	// that was fenced in between.
	unsubscribe := p.tbl.Subscribe(p.switched)
	defer unsubscribe()

	for ctx.Err() == nil {
		changed := p.tbl.Changed()
		var retry <-chan time.Time
		var t *time.Timer
		if at := p.sync(time.Now()); !at.IsZero() {
			t = time.NewTimer(time.Until(at))
			retry = t.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-retry:
		}
		if t != nil {
			t.Stop()
		}
	}

	p.stopAccepting()
	p.acceptWG.Wait()
	done := make(chan struct{})
	go func() {
		p.connWG.Wait()
		close(done)
	}()
	drain := time.NewTimer(p.cfg.DrainTimeout)
	defer drain.Stop()
	for {
		// Roles still apply while draining: a connection to a node that
		// was fenced meanwhile is closed like before.
		changed := p.tbl.Changed()
		p.sync(time.Now())
		select {
		case <-done:
			return nil
		case <-drain.C:
			p.log.Info("proxy: drain timeout, closing open connections")
			p.closeAll()
		case <-changed:
		}
	}
}

// sync brings the endpoints in line with the table, closes connections to
// backends that lost their role and returns when the earliest failed
// listen is due again (zero: none).
func (p *Proxy) sync(now time.Time) (retryAt time.Time) {
	views := p.tbl.List()
	want := map[epKey]int{}
	served := map[string]table.View{}
	for _, v := range views {
		if v.RWPort > 0 {
			want[epKey{v.ID, RW}] = v.RWPort
		}
		if v.ROPort > 0 {
			want[epKey{v.ID, RO}] = v.ROPort
		}
		if v.RWPort > 0 || v.ROPort > 0 {
			served[v.ID] = v
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for k, ep := range p.eps {
		if port, ok := want[k]; !ok || port != ep.port {
			p.log.Info("proxy: endpoint closed", "instance", k.id, "endpoint", k.kind, "port", ep.port)
			p.closeEndpoint(ep)
			delete(p.eps, k)
		}
	}
	for id := range p.insts {
		if _, ok := served[id]; !ok {
			delete(p.insts, id)
			// Endpoints hold their series resolved, so connections still
			// closing cannot bring the deleted ones back.
			p.m.forget(id)
		}
	}
	for k, port := range want {
		ep, ok := p.eps[k]
		if !ok {
			if p.closing {
				continue
			}
			ep = newEndpoint(k, port, p.m.endpoint(k.id, k.kind))
			p.eps[k] = ep
		}
		if ep.ln != nil || p.closing {
			continue
		}
		if !ep.nextTry.After(now) {
			p.listen(ep, now)
		}
		if ep.ln == nil && (retryAt.IsZero() || ep.nextTry.Before(retryAt)) {
			retryAt = ep.nextTry
		}
	}
	for _, v := range served {
		p.enforce(v)
	}
	return retryAt
}

// listen binds ep's port and starts its accept loop; under p.mu.
func (p *Proxy) listen(ep *endpoint, now time.Time) {
	addr := net.JoinHostPort(p.cfg.ListenHost, strconv.Itoa(ep.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		ep.s.listenErrors.Inc()
		ep.nextTry = now.Add(p.cfg.ListenRetry)
		level := slog.LevelWarn
		if ep.err != nil && ep.err.Error() == err.Error() {
			level = slog.LevelDebug // the same failure again, every ListenRetry
		}
		ep.err = err
		p.log.Log(context.Background(), level, "proxy: listen failed, will retry",
			"instance", ep.id, "endpoint", ep.kind, "addr", addr, "retry_in", p.cfg.ListenRetry, "err", err)
		return
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok { // net.Listen("tcp") returns a *net.TCPListener
		_ = ln.Close()
		ep.err = fmt.Errorf("listen %s: %T is not a TCP listener", addr, ln)
		return
	}
	ep.ln, ep.err = tl, nil
	p.log.Info("proxy: listening", "instance", ep.id, "endpoint", ep.kind, "addr", addr)
	p.acceptWG.Add(1)
	go func() {
		defer p.acceptWG.Done()
		p.accept(ep, tl)
	}()
}

// switched counts a primary change of a served instance and closes the
// read-write connections to the old primary. It runs on the table
// writer's goroutine and only takes p.mu, which is never held long.
func (p *Proxy) switched(c table.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.insts[c.InstanceID]; !ok {
		return
	}
	p.m.switches.WithLabelValues(c.InstanceID).Inc()
	p.log.Info("proxy: primary changed", "instance", c.InstanceID, "old", c.Old, "new", c.New)
	if ep := p.eps[epKey{c.InstanceID, RW}]; ep != nil {
		for conn := range ep.conns {
			if conn.addr == c.Old {
				conn.close()
			}
		}
	}
}

// enforce closes the connections whose backend lost its role under v;
// under p.mu.
func (p *Proxy) enforce(v table.View) {
	st, ok := p.insts[v.ID]
	if !ok {
		st = &instState{}
		p.insts[v.ID] = st
	} else if st.gen == v.Gen {
		return
	}
	st.gen = v.Gen
	for _, kind := range []string{RW, RO} {
		ep := p.eps[epKey{v.ID, kind}]
		if ep == nil {
			continue
		}
		for c := range ep.conns {
			if !allowed(kind, v, c.addr, c.fallback) {
				p.log.Debug("proxy: closing connection, backend lost its role",
					"instance", v.ID, "endpoint", kind, "backend", c.addr)
				c.close()
			}
		}
	}
}

// allowed reports whether a connection of kind to addr may go on under v.
// A read-write connection follows the primary. A read-only one stays on a
// serving replica, or on the primary when it was opened there as the
// fallback or when no replica serves.
func allowed(kind string, v table.View, addr string, fallback bool) bool {
	pr, hasPrimary := v.Primary()
	isPrimary := hasPrimary && pr.Address == addr
	if kind == RW {
		return isPrimary
	}
	reps := v.Replicas()
	for _, r := range reps {
		if r.Address == addr {
			return true
		}
	}
	return isPrimary && (fallback || len(reps) == 0)
}

// usable reports whether a new connection of kind may be connected to
// addr under v.
func usable(kind string, v table.View, addr string) bool {
	pr, ok := v.Primary()
	if ok && pr.Address == addr && !v.Switching {
		return true
	}
	if kind == RO {
		for _, r := range v.Replicas() {
			if r.Address == addr {
				return true
			}
		}
	}
	return false
}

// stopAccepting closes every listener and ends every wait for a backend.
func (p *Proxy) stopAccepting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closing = true
	for _, ep := range p.eps {
		ep.stopAccepting()
	}
}

// closeEndpoint stops ep and closes its connections; under p.mu.
func (p *Proxy) closeEndpoint(ep *endpoint) {
	ep.closed = true
	ep.stopAccepting()
	for c := range ep.conns {
		c.close()
	}
}

// closeAll closes every open connection.
func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ep := range p.eps {
		for c := range ep.conns {
			c.close()
		}
	}
}

// EndpointStats is one endpoint as an operator sees it.
type EndpointStats struct {
	InstanceID string `json:"instance_id"`
	// Endpoint is RW or RO.
	Endpoint  string `json:"endpoint"`
	Port      int    `json:"port"`
	Listening bool   `json:"listening"`
	// Error is the last failure to listen, while not listening.
	Error string `json:"error,omitempty"`
	// Active counts the connections held: waiting for a backend or
	// forwarding.
	Active int `json:"active"`
	// Backends counts the forwarding connections by backend address.
	Backends map[string]int `json:"backends"`
}

// Stats returns every endpoint, by instance and kind.
func (p *Proxy) Stats() []EndpointStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]EndpointStats, 0, len(p.eps))
	for _, ep := range p.eps {
		s := EndpointStats{
			InstanceID: ep.id, Endpoint: ep.kind, Port: ep.port, Listening: ep.ln != nil,
			Active: ep.waiting + len(ep.conns), Backends: make(map[string]int, len(ep.backends)),
		}
		if ep.err != nil {
			s.Error = ep.err.Error()
		}
		for a, n := range ep.backends {
			s.Backends[a] = n
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].InstanceID != out[j].InstanceID {
			return out[i].InstanceID < out[j].InstanceID
		}
		return out[i].Endpoint > out[j].Endpoint // rw before ro
	})
	return out
}
