// Package proxy forwards API requests from the gateway to the services: a
// lean hand-rolled forwarder (its own keep-alive connection pool driven on the
// handler's goroutine for http upstreams — see connPool —, pooled copy
// buffers, no per-request header cloning beyond what forwarding needs) with a
// per-upstream timeout, a sony/gobreaker circuit breaker per upstream and
// retries of idempotent requests on connection errors. An upstream may have
// several replicas (see balance.go): requests go round robin to the healthy
// ones, each health-checked on its /readyz, and a request that cannot have
// reached a replica, or an idempotent one, is retried on another. It strips every
// incoming X-Canopy-* header and, for authenticated routes, adds the signed
// identity of the caller. It does not authenticate or rate limit; the gateway's
// middleware does that before a request gets here.
package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/replicas"
	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// roundTripper is an upstream connection pool: connPool for http upstreams,
// http.Transport for https ones.
type roundTripper interface {
	RoundTrip(*http.Request) (*http.Response, error)
	CloseIdleConnections()
}

// Upstream is one service the gateway forwards to.
type Upstream struct {
	// Name labels metrics and breakers, e.g. "catalog", and is the audience
	// the identity is signed for (tenancy.AudienceCatalog).
	Name string
	// URL is the service's base URL, e.g. http://127.0.0.1:8082, or the
	// comma-separated base URLs of its replicas.
	URL string
	// Timeout bounds waiting for the response headers.
	Timeout time.Duration
}

// Config tunes every upstream.
type Config struct {
	// MaxIdleConnsPerHost sizes the keep-alive pool per upstream.
	MaxIdleConnsPerHost int
	// DialTimeout bounds connecting to an upstream.
	DialTimeout time.Duration
	// Retries is how many times an idempotent request (GET, HEAD) is retried
	// after a connection error.
	Retries int
	// BreakerFailures is how many consecutive failures open a breaker.
	BreakerFailures uint32
	// BreakerOpenFor is how long an open breaker rejects before probing.
	BreakerOpenFor time.Duration
	// HealthInterval is how often each replica of an upstream with several
	// is checked on its /readyz (default 1s); HealthTimeout bounds one
	// check (default 1s). A single-replica upstream is not checked.
	HealthInterval time.Duration
	HealthTimeout  time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxIdleConnsPerHost <= 0 {
		c.MaxIdleConnsPerHost = 512
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerOpenFor <= 0 {
		c.BreakerOpenFor = 5 * time.Second
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = time.Second
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = time.Second
	}
	return c
}

// Proxy holds one Target per upstream.
type Proxy struct {
	targets map[string]*Target
}

// Target forwards requests to one upstream, over its replicas.
type Target struct {
	name string
	// backends are the upstream's replicas, in the configured order; most
	// upstreams have one.
	backends   []*backend
	rr         atomic.Uint32 // round robin over backends
	cfg        Config
	signer     *tenancy.Signer
	logger     *slog.Logger
	requests   *prometheus.CounterVec
	byCode     [600]atomic.Pointer[prometheus.Counter] // requests' counters by status code, made on first use
	noResponse atomic.Pointer[prometheus.Counter]      // requests' counter for code "000" (no response)
	duration   prometheus.Observer
	retryOpen  string
}

// Metrics are the proxy's Prometheus collectors.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	state    *prometheus.GaugeVec
}

// NewMetrics registers the proxy metrics on reg (nil registers nothing).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "canopy_gateway_upstream_requests_total",
			Help: "Requests forwarded to upstreams by upstream and status code (000 for no response)."}, []string{"upstream", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "canopy_gateway_upstream_duration_seconds",
			Help: "Time to the upstream's response headers.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
			[]string{"upstream"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "canopy_gateway_breaker_state",
			Help: "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open."}, []string{"upstream"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.state} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register proxy metrics: %w", err)
			}
		}
	}
	return m, nil
}

// New builds targets for upstreams. secret signs identity headers.
func New(cfg Config, upstreams []Upstream, secret []byte, m *Metrics, logger *slog.Logger) (*Proxy, error) {
	if logger == nil || m == nil {
		return nil, errors.New("new proxy: nil logger or metrics")
	}
	if len(secret) == 0 {
		return nil, errors.New("new proxy: empty signing secret")
	}
	cfg = cfg.withDefaults()
	signer := tenancy.NewSigner(secret)
	p := &Proxy{targets: map[string]*Target{}}
	for _, u := range upstreams {
		if u.Timeout <= 0 {
			u.Timeout = 30 * time.Second
		}
		t := &Target{
			name: u.Name, cfg: cfg, signer: signer, logger: logger,
			requests:  m.requests.MustCurryWith(prometheus.Labels{"upstream": u.Name}),
			duration:  m.duration.WithLabelValues(u.Name),
			retryOpen: strconv.Itoa(max(1, int(cfg.BreakerOpenFor/time.Second))),
		}
		urls := SplitURLs(u.URL)
		if len(urls) == 0 {
			return nil, fmt.Errorf("new proxy: upstream %s: no url", u.Name)
		}
		gauge := m.state.WithLabelValues(u.Name)
		for i, raw := range urls {
			b, err := newBackend(u, raw, cfg, logger, gauge)
			if err != nil {
				return nil, err
			}
			b.index = i
			t.backends = append(t.backends, b)
		}
		p.targets[u.Name] = t
	}
	return p, nil
}

// Target returns the target for upstream name, or nil.
func (p *Proxy) Target(name string) *Target { return p.targets[name] }

// Close drops idle upstream connections.
func (p *Proxy) Close() {
	for _, t := range p.targets {
		for _, b := range t.backends {
			b.transport.CloseIdleConnections()
		}
	}
}

// Handler returns an http.Handler forwarding to t. When sign is true the
// request must carry a tenancy.Principal in its context, which is signed into
// the identity headers; otherwise the request goes as is (minus X-Canopy-*).
func (t *Target) Handler(sign bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.serve(w, r, sign) })
}

var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// errUpstreamStatus marks a 502/503/504 answer as a failure for the breaker.
var errUpstreamStatus = errors.New("upstream answered with a gateway error")

func (t *Target) serve(w http.ResponseWriter, r *http.Request, sign bool) {
	b, done, err := t.pick(nil)
	if err != nil {
		t.count(http.StatusServiceUnavailable)
		w.Header().Set("Retry-After", t.retryOpen)
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable,
			fmt.Sprintf("the %s service is unavailable; try again shortly", t.name)))
		return
	}
	out, err := t.outbound(r, sign, b)
	if err != nil {
		done(nil)
		httpx.WriteError(w, r, err)
		return
	}
	start := time.Now()
	resp, err := b.transport.RoundTrip(out)
	if err != nil {
		if len(t.backends) == 1 {
			resp, err = t.retrySame(r.Context(), b, out, sign, err)
		} else {
			resp, done, err = t.failover(r.Context(), r.URL, b, done, out, sign, err)
		}
	}
	t.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		done(err)
		t.countIn(&t.noResponse, "000")
		t.writeTransportError(w, r, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout {
		done(errUpstreamStatus)
	} else {
		done(nil)
	}
	t.count(resp.StatusCode)

	dst := w.Header()
	for k, vv := range resp.Header {
		if hopHeaders[k] {
			continue
		}
		dst[k] = vv
	}
	w.WriteHeader(resp.StatusCode)
	err = copyBody(w, resp.Body)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.logger.DebugContext(r.Context(), "copy upstream response", "upstream", t.name, "err", err)
	}
}

// copyBody copies with a pooled buffer through w.Write. It deliberately
// avoids io.Copy: http.response's ReaderFrom allocates a 32 KiB buffer per
// call and writes the headers and a small body in separate syscalls.
func copyBody(w http.ResponseWriter, body io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// outbound builds the request to send to backend b, sharing what it can with r.
func (t *Target) outbound(r *http.Request, sign bool, b *backend) (*http.Request, error) {
	out := r.WithContext(r.Context()) // shallow copy
	b.aim(out, r.URL)
	out.RequestURI = ""
	out.Close = false
	// Room for the three forwarding and the five identity headers added
	// below, so the map is made once instead of growing mid-request.
	h := make(http.Header, len(r.Header)+8)
	vals := new([3]string) // one allocation for the forwarding headers' values
	for k, vv := range r.Header {
		if hopHeaders[k] || strings.HasPrefix(k, tenancy.HeaderPrefix) {
			continue
		}
		if sign && (k == "Authorization" || k == "Cookie" || k == "X-Csrf-Token") {
			continue // the gateway's API key or portal session is not the service's business
		}
		h[k] = vv
	}
	if id := w3cRequestID(r); id != "" {
		vals[0] = id
		h[httpx.RequestIDHeader] = vals[0:1:1]
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
			vals[1] = strings.Join(prior, ", ") + ", " + ip
		} else {
			vals[1] = ip
		}
		h["X-Forwarded-For"] = vals[1:2:2]
	}
	vals[2] = "http"
	if r.TLS != nil {
		vals[2] = "https"
	}
	h["X-Forwarded-Proto"] = vals[2:3:3]
	out.Header = h
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	if sign {
		p, ok := tenancy.PrincipalFrom(r.Context())
		if !ok {
			return nil, httpx.NewProblem(http.StatusUnauthorized, "authentication required")
		}
		bh := tenancy.EmptyBodyHash
		if out.Body != nil && out.Body != http.NoBody {
			// The signature covers the body, so it is buffered (the router
			// bounds it by MaxBodyBytes) and hashed before anything is sent.
			body, err := io.ReadAll(out.Body)
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return nil, httpx.NewProblem(http.StatusRequestEntityTooLarge, "request body too large")
				}
				return nil, httpx.NewProblem(http.StatusBadRequest, "could not read the request body")
			}
			bh = sha256.Sum256(body)
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
			if len(body) == 0 {
				out.Body = http.NoBody
			} else if len(t.backends) > 1 {
				// Buffered anyway: another replica can be sent the same bytes.
				out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			}
		}
		t.sign(out, p, bh)
	}
	return out, nil
}

// sign (re)signs out for t's audience; every attempt of a retried request
// gets its own nonce, so the upstream's replay cache never refuses a retry.
func (t *Target) sign(out *http.Request, p tenancy.Principal, bodyHash [sha256.Size]byte) {
	t.signer.Sign(out.Header, out.Method, out.URL.RequestURI(), bodyHash, t.name, p)
}

// w3cRequestID returns the request id the gateway assigned (echoed in the
// response header by httpx) so the upstream logs and answers the same id.
func w3cRequestID(r *http.Request) string {
	if id := middleware.GetReqID(r.Context()); id != "" {
		return id
	}
	return r.Header.Get(httpx.RequestIDHeader)
}

// retrySame retries a single-replica upstream's request that failed with
// err: an idempotent one, after a failed connect, on the same upstream.
func (t *Target) retrySame(ctx context.Context, b *backend, out *http.Request, sign bool, err error) (*http.Response, error) {
	idempotent := (out.Method == http.MethodGet || out.Method == http.MethodHead) && out.Body == http.NoBody
	if !idempotent || t.cfg.Retries == 0 || !isConnError(err) {
		return nil, err
	}
	// The fast path above allocates nothing for retries; only a failed dial
	// of an idempotent request pays for the backoff.
	policy := retry.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, MaxTries: t.cfg.Retries}
	var p tenancy.Principal
	if sign {
		p, _ = tenancy.PrincipalFrom(out.Context()) // outbound checked it is there
	}
	var resp *http.Response
	err = retry.Do(ctx, policy, func(context.Context) error {
		if sign {
			t.sign(out, p, tenancy.EmptyBodyHash) // idempotent requests have no body
		}
		var err error
		resp, err = b.transport.RoundTrip(out)
		if err != nil && !isConnError(err) {
			return retry.Permanent(err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// isConnError reports whether err happened before the upstream saw the
// request (refused or failed dial), so retrying is safe even for non-idempotent
// requests; we retry only idempotent ones anyway.
func isConnError(err error) bool { return replicas.Refused(err) }

func (t *Target) writeTransportError(w http.ResponseWriter, r *http.Request, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
	case isConnError(err):
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable,
			fmt.Sprintf("the %s service is unavailable; try again shortly", t.name)))
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusGatewayTimeout,
			fmt.Sprintf("the %s service did not answer in time", t.name)))
	case safeToRepeat(r):
		// The replica read the request and went away (a crash, mostly): it
		// may or may not have taken effect, and sending it again cannot do
		// it twice, so the client is told to — not done here, because the
		// gateway resends only what needs no such reasoning about the API.
		t.logger.WarnContext(r.Context(), "upstream request failed", "upstream", t.name, "err", err)
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadGateway,
			fmt.Sprintf("the %s service dropped the request; it may have been applied, and sending it again is safe", t.name)))
	default:
		t.logger.WarnContext(r.Context(), "upstream request failed", "upstream", t.name, "err", err)
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusBadGateway,
			fmt.Sprintf("the %s service returned an invalid answer", t.name)))
	}
}

// safeToRepeat reports whether sending r again cannot apply it twice: the
// methods HTTP defines as idempotent (every DELETE and PUT of the API is:
// a repeat answers with the same operation, 404 or 410), and any request
// carrying an Idempotency-Key, which the API answers from its record.
func safeToRepeat(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// count adds one to the requests counter of status code, without a label
// lookup per request.
func (t *Target) count(code int) {
	if code < 100 || code >= len(t.byCode) {
		t.requests.WithLabelValues(strconv.Itoa(code)).Inc()
		return
	}
	if c := t.byCode[code].Load(); c != nil {
		(*c).Inc()
		return
	}
	t.countIn(&t.byCode[code], strconv.Itoa(code))
}

// countIn adds one to the requests counter of code, kept in slot once made.
func (t *Target) countIn(slot *atomic.Pointer[prometheus.Counter], code string) {
	c := slot.Load()
	if c == nil {
		cc := t.requests.WithLabelValues(code)
		c = &cc
		slot.Store(c)
	}
	(*c).Inc()
}
