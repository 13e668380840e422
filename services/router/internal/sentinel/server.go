// Package sentinel serves the Redis Sentinel protocol over the router's
// table, so that standard Sentinel clients (go-redis failover clients,
// redis-py Sentinel, Jedis, redis-cli) discover an instance's current
// primary through Canopy and hear of its changes (+switch-master).
//
// Names are tenant-scoped: a connection authenticates with the account of
// one of its tenant's Redis bindings and then sees that tenant's Redis
// instances only, by name. It is a read-only view: Canopy's failover
// service decides and performs failovers, never this port.
package sentinel

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// writeTimeout bounds one write to a peer that does not read.
const writeTimeout = 10 * time.Second

// pushQueue is how many notifications a subscriber may have pending; a
// subscriber further behind is disconnected (it reconnects and asks again,
// as Redis's output buffer limit makes it do).
const pushQueue = 64

// Server is the Sentinel protocol server.
type Server struct {
	cfg  Config
	tbl  *table.Table
	log  *slog.Logger
	myID string

	connsGauge prometheus.Gauge
	commands   *prometheus.CounterVec
	switches   prometheus.Counter

	mu     sync.Mutex
	conns  map[*conn]struct{}
	nextID int64
}

// New returns a server over tbl; metrics register on reg.
func New(cfg Config, tbl *table.Table, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sentinel config: %w", err)
	}
	if tbl == nil || log == nil || reg == nil {
		return nil, errors.New("sentinel: nil table, logger or registerer")
	}
	cfg = cfg.withDefaults()
	// A stable id per address, as a real Sentinel keeps its id in its
	// configuration file across restarts.
	sum := sha1.Sum([]byte("canopy-router-sentinel " + cfg.Addr))
	s := &Server{
		cfg:  cfg,
		tbl:  tbl,
		log:  log,
		myID: hex.EncodeToString(sum[:]),
		connsGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "canopy_router_sentinel_connections",
			Help: "Open connections to the Sentinel port.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canopy_router_sentinel_commands_total",
			Help: "Commands served by the Sentinel port, by command and outcome (ok, error).",
		}, []string{"command", "outcome"}),
		switches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canopy_router_sentinel_switch_notifications_total",
			Help: "+switch-master messages delivered to subscribers.",
		}),
		conns: map[*conn]struct{}{},
	}
	for _, c := range []prometheus.Collector{s.connsGauge, s.commands, s.switches} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sentinel metrics: %w", err)
		}
	}
	return s, nil
}

// Run listens on the configured address and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("sentinel listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx ends, then closes ln and
// every connection and returns once all their goroutines have ended. It
// returns nil when ctx ended, an error when ln failed. Call it once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	unsubscribe := s.tbl.Subscribe(s.publish)
	defer unsubscribe()

	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		_ = ln.Close()
	}()

	s.log.Info("sentinel port serving", "addr", ln.Addr().String())
	var serveErr error
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				serveErr = fmt.Errorf("sentinel accept: %w", err)
				break
			}
			// Out of file descriptors and the like: wait, as net/http
			// does, rather than spin or stop serving.
			s.log.Warn("sentinel accept", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		c, ok := s.admit(nc)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve()
		}()
	}
	cancel()
	s.closeAll()
	return serveErr
}

// admit registers a new connection, or refuses it over MaxConns with the
// error Redis gives.
func (s *Server) admit(nc net.Conn) (*conn, bool) {
	s.mu.Lock()
	if len(s.conns) >= s.cfg.MaxConns {
		s.mu.Unlock()
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
		_ = nc.Close()
		s.log.Warn("sentinel connection refused: max_conns reached", "remote", nc.RemoteAddr().String())
		return nil, false
	}
	s.nextID++
	c := newConn(s, nc, s.nextID)
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.connsGauge.Inc()
	return c, true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsGauge.Dec()
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
}

// publish hands a primary change to every connection; each delivers it
// only if its tenant owns the instance and it subscribed. It runs on the
// table writer's goroutine, so it only enqueues.
func (s *Server) publish(ch table.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.enqueue(ch)
	}
}

func (s *Server) count(command string, failed bool) {
	outcome := "ok"
	if failed {
		outcome = "error"
	}
	s.commands.WithLabelValues(command, outcome).Inc()
}
