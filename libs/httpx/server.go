package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures an HTTP server.
type Config struct {
	// Addr is the listen address; "127.0.0.1:0" picks a free port.
	Addr string `yaml:"addr"`
	// ReadHeaderTimeout bounds reading request headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" default:"5s"`
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration `yaml:"read_timeout" default:"30s"`
	// WriteTimeout bounds writing a response.
	WriteTimeout time.Duration `yaml:"write_timeout" default:"60s"`
	// IdleTimeout bounds keep-alive idleness.
	IdleTimeout time.Duration `yaml:"idle_timeout" default:"120s"`
	// ShutdownDelay keeps serving after readiness turns false, so load
	// balancers notice before connections are refused.
	ShutdownDelay time.Duration `yaml:"shutdown_delay" default:"0s"`
	// ShutdownTimeout bounds the drain of in-flight requests.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" default:"15s"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("http addr is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("http addr %q: %w", c.Addr, err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, 60*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.ShutdownTimeout, 15*time.Second)
	return c
}

// ReadinessCheck reports whether a dependency is usable.
type ReadinessCheck func(ctx context.Context) error

// Server is an HTTP server with health, readiness and metrics endpoints and
// a graceful shutdown bound to a context.
type Server struct {
	cfg      Config
	handler  http.Handler
	logger   *slog.Logger
	reg      *prometheus.Registry
	mu       sync.Mutex
	checks   map[string]ReadinessCheck
	stopping atomic.Bool
	addr     atomic.Value
	ready    chan struct{}
	brief    bool
}

// ServerOption adjusts NewServer.
type ServerOption func(*Server)

// WithBriefReadiness makes /readyz answer only its status, without the names
// of the dependencies or their errors: for a listener the public reaches,
// where those would tell an attacker what runs behind it.
func WithBriefReadiness() ServerOption { return func(s *Server) { s.brief = true } }

// NewServer returns a server for handler. /livez, /readyz and /metrics are
// served next to it; reg may be nil for no /metrics.
func NewServer(cfg Config, handler http.Handler, logger *slog.Logger, reg *prometheus.Registry, opts ...ServerOption) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg.withDefaults(), handler: handler, logger: logger, reg: reg,
		checks: map[string]ReadinessCheck{}, ready: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// AddReadinessCheck adds a named dependency check to /readyz.
func (s *Server) AddReadinessCheck(name string, check ReadinessCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the address the server listens on, once Ready is closed.
func (s *Server) Addr() string {
	if v, ok := s.addr.Load().(string); ok {
		return v
	}
	return ""
}

// Handler returns the full handler: probes, metrics and the application.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.serveReadyz)
	if s.reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	}
	if s.handler == nil {
		return mux
	}
	mux.Handle("/", s.handler)
	app := s.handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !toApp(r) {
			mux.ServeHTTP(w, r)
			return
		}
		// What the mux would do, without its per-request matching and
		// allocations: the "/" pattern takes every clean path but the probes.
		r.Pattern = "/"
		app.ServeHTTP(w, r)
	})
}

// toApp reports whether the mux would hand r to the application unchanged:
// not a probe or metrics path, not CONNECT or "*", and a path the mux
// neither cleans (redirect) nor unescapes for matching.
func toApp(r *http.Request) bool {
	p := r.URL.Path
	if r.Method == http.MethodConnect || r.RequestURI == "*" || r.URL.RawPath != "" || len(p) == 0 || p[0] != '/' {
		return false
	}
	switch p {
	case "/livez", "/readyz", "/metrics":
		return false
	}
	return isCleanPath(p)
}

// isCleanPath reports whether p (starting with "/") has no empty, "." or ".."
// segments, i.e. path.Clean would keep it (up to a trailing slash), and no
// characters URL.EscapedPath would escape.
func isCleanPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if i+1 < len(p) && p[i+1] == '/' {
				return false
			}
		case c == '.':
			if p[i-1] == '/' && (i+1 == len(p) || p[i+1] == '/' || (p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/'))) {
				return false
			}
		case c == '%' || c <= ' ' || c >= 0x7f || c == '?' || c == '#':
			return false
		}
	}
	return true
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		WriteJSON(w, http.StatusServiceUnavailable, readiness{Status: "shutting down"})
		return
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make(map[string]ReadinessCheck, len(s.checks))
	for n, c := range s.checks {
		checks[n] = c
	}
	s.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	res := readiness{Status: "ok", Checks: map[string]string{}}
	status := http.StatusOK
	for _, n := range names {
		if err := checks[n](ctx); err != nil {
			res.Checks[n] = err.Error()
			res.Status = "not ready"
			status = http.StatusServiceUnavailable
			continue
		}
		res.Checks[n] = "ok"
	}
	if s.brief {
		res.Checks = nil
	}
	WriteJSON(w, status, res)
}

// Run listens and serves until ctx ends, then turns readiness false, waits
// ShutdownDelay, and drains in-flight requests within ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.addr.Store(ln.Addr().String())
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	close(s.ready)
	s.logger.Info("http server listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	if s.cfg.ShutdownDelay > 0 {
		t := time.NewTimer(s.cfg.ShutdownDelay)
		<-t.C
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	s.logger.Info("http server stopped", "addr", ln.Addr().String())
	return nil
}

// Unready turns /readyz to 503 "shutting down" ahead of Run's own shutdown,
// so that a process with several listeners can take them all out of load
// balancing before the first one drains.
func (s *Server) Unready() { s.stopping.Store(true) }

// Stopping reports whether shutdown has begun.
func (s *Server) Stopping() bool { return s.stopping.Load() }
