package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/canopy-platform/canopy/libs/replicas"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// backend is one replica of an upstream: its own connection pool, circuit
// breaker and health. An upstream with one replica is exactly what the
// gateway had before replicas: one pool, one breaker, no health checks.
type backend struct {
	url       string // as configured, for logs
	index     int    // position in Target.backends
	scheme    string
	host      string
	basePath  string
	transport roundTripper
	breaker   *gobreaker.TwoStepCircuitBreaker[struct{}]
	// healthy is false while the replica is out of the rotation: its last
	// health check failed, or a request to it failed without an answer.
	// Only consulted when the upstream has several replicas.
	healthy atomic.Bool
}

// SplitURLs splits an upstream setting into its replicas' base URLs: one
// URL, or several separated by commas (blanks ignored); the same form every
// service's callee setting takes (libs/replicas).
func SplitURLs(s string) []string { return replicas.Split(s) }

func newBackend(u Upstream, raw string, cfg Config, logger *slog.Logger, gauge prometheus.Gauge) (*backend, error) {
	pu, err := url.Parse(raw)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, fmt.Errorf("new proxy: upstream %s: invalid url %q", u.Name, raw)
	}
	b := &backend{url: raw, scheme: pu.Scheme, host: pu.Host, basePath: strings.TrimSuffix(pu.Path, "/")}
	b.healthy.Store(true)
	if pu.Scheme == "http" {
		addr := pu.Host
		if pu.Port() == "" {
			addr = net.JoinHostPort(pu.Hostname(), "80")
		}
		b.transport = newConnPool(addr, cfg.DialTimeout, u.Timeout, cfg.MaxIdleConnsPerHost)
	} else {
		b.transport = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          cfg.MaxIdleConnsPerHost,
			MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: u.Timeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     false,
			DisableCompression:    true, // pass encodings through untouched
			WriteBufferSize:       16 << 10,
			ReadBufferSize:        16 << 10,
		}
	}
	b.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        u.Name,
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.BreakerFailures },
		OnStateChange: func(name string, from, to gobreaker.State) {
			// With several replicas the gauge shows the last change of any.
			gauge.Set(float64(to))
			logger.Warn("upstream circuit breaker changed state", "upstream", name, "replica", raw, "from", from.String(), "to", to.String())
		},
		// A client that went away says nothing about the upstream.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return b, nil
}

// aim points out at b: u (the incoming request's URL) on b's host and base path.
func (b *backend) aim(out *http.Request, in *url.URL) {
	u := *in
	u.Scheme, u.Host = b.scheme, b.host
	if b.basePath != "" {
		u.Path = b.basePath + u.Path
		if u.RawPath != "" {
			u.RawPath = b.basePath + u.RawPath
		}
	}
	out.URL = &u
	out.Host = b.host
}

// errNoReplica is pick's answer when every replica's breaker is open.
var errNoReplica = errors.New("no replica available")

// pick chooses the backend for the next attempt and takes a breaker slot on
// it: the only one of a single-replica upstream; otherwise the next healthy
// replica in round robin after `after` (nil: after the last one picked),
// skipping open breakers. When no replica is healthy it tries the unhealthy
// ones too rather than refuse (health may lag, and an answer from a replica
// beats a certain 503).
func (t *Target) pick(after *backend) (*backend, func(error), error) {
	if len(t.backends) == 1 {
		b := t.backends[0]
		done, err := b.breaker.Allow()
		return b, done, err
	}
	n := len(t.backends)
	var start int
	if after == nil {
		start = int(t.rr.Add(1)-1) % n
	} else {
		start = after.index + 1
	}
	for _, wantHealthy := range []bool{true, false} {
		for i := range n {
			b := t.backends[(start+i)%n]
			if b == after || b.healthy.Load() != wantHealthy {
				continue
			}
			if done, err := b.breaker.Allow(); err == nil {
				return b, done, nil
			}
		}
	}
	return nil, nil, errNoReplica
}

// failover handles a failed attempt on b of a multi-replica upstream: b is
// taken out of the rotation, and the request goes to each other replica in
// turn while that is safe: always when nothing reached the replica (a failed
// connect), for a request with an Idempotency-Key when its reused connection
// failed before any answer, and for GET and HEAD (idempotent, bodiless)
// after any failure but a timeout, which would only double the client's wait. It returns the
// breaker callback of the last attempt.
func (t *Target) failover(ctx context.Context, in *url.URL, b *backend, done func(error), out *http.Request, sign bool, err error) (*http.Response, func(error), error) {
	idempotent := (out.Method == http.MethodGet || out.Method == http.MethodHead) && out.Body == http.NoBody
	for range len(t.backends) - 1 {
		if ctx.Err() != nil || errors.Is(err, context.Canceled) {
			return nil, done, err
		}
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
		if !timeout {
			t.eject(b, err)
		}
		// A request with an Idempotency-Key whose reused connection failed
		// before any answer came (the replica closed it, e.g. shutting down
		// in a rolling restart) may go again too: the key makes a repeat
		// harmless, as net/http's Transport also holds.
		var nothing errNothingReceived
		keyed := out.Header.Get("Idempotency-Key") != "" && errors.As(err, &nothing)
		safe := isConnError(err) || (idempotent || keyed) && !timeout
		if !safe || (out.Body != http.NoBody && out.Body != nil && out.GetBody == nil) {
			return nil, done, err
		}
		next, nextDone, perr := t.pick(b)
		if perr != nil {
			return nil, done, err
		}
		done(err)
		if out.GetBody != nil {
			body, gerr := out.GetBody()
			if gerr != nil {
				nextDone(nil)
				return nil, done, err
			}
			out.Body = body
		}
		next.aim(out, in)
		if sign {
			t.resign(out)
		}
		b, done = next, nextDone
		var resp *http.Response
		resp, err = b.transport.RoundTrip(out)
		if err == nil {
			return resp, done, nil
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.eject(b, err)
	}
	return nil, done, err
}

// resign signs out afresh for its new target (the URL and nonce change).
func (t *Target) resign(out *http.Request) {
	p, _ := tenancy.PrincipalFrom(out.Context()) // outbound checked it is there
	bh := tenancy.EmptyBodyHash
	if out.GetBody != nil {
		if body, err := out.GetBody(); err == nil {
			data, _ := io.ReadAll(body)
			bh = sha256.Sum256(data)
		}
	}
	t.sign(out, p, bh)
}

// eject takes b out of the rotation until a health check finds it ready.
func (t *Target) eject(b *backend, err error) {
	if b.healthy.Swap(false) {
		t.logger.Warn("upstream replica taken out of rotation", "upstream", t.name, "replica", b.url, "err", err)
	}
}

// Run health-checks the replicas of every upstream that has several, each
// on its /readyz every HealthInterval, until ctx ends: a replica that fails
// a check leaves the rotation, one that passes (re)joins it.
func (p *Proxy) Run(ctx context.Context) error {
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: time.Second}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for _, t := range p.targets {
		if len(t.backends) < 2 {
			continue
		}
		for _, b := range t.backends {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.watch(ctx, client, b)
			}()
		}
	}
	wg.Wait()
	return nil
}

// watch checks b every HealthInterval until ctx ends.
func (t *Target) watch(ctx context.Context, client *http.Client, b *backend) {
	tick := time.NewTicker(t.cfg.HealthInterval)
	defer tick.Stop()
	for {
		err := t.check(ctx, client, b)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			t.eject(b, err)
		case !b.healthy.Swap(true):
			t.logger.Info("upstream replica back in rotation", "upstream", t.name, "replica", b.url)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check asks b's /readyz once.
func (t *Target) check(ctx context.Context, client *http.Client, b *backend) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.scheme+"://"+b.host+b.basePath+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: /readyz answered %d", resp.StatusCode)
	}
	return nil
}
