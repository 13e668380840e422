// Package httpapi is the gateway's HTTP edge: it assembles the router
// (authentication, rate limiting, audit, the gateway's own tenant, API key,
// quota and audit routes, the OpenAPI document and the reverse-proxied service
// routes) and maps between JSON and the domain. Business rules live in the
// domain packages and authorization decisions in tenancy.Can.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/apikey"
	"github.com/canopy-platform/canopy/services/gateway/internal/audit"
	"github.com/canopy-platform/canopy/services/gateway/internal/auththrottle"
	"github.com/canopy-platform/canopy/services/gateway/internal/proxy"
	"github.com/canopy-platform/canopy/services/gateway/internal/ratelimit"
	"github.com/canopy-platform/canopy/services/gateway/internal/session"
	"github.com/canopy-platform/canopy/services/gateway/internal/tenant"
)

// Store is the persistence the handlers need.
type Store interface {
	CreateTenant(ctx context.Context, t tenant.Tenant) error
	Tenant(ctx context.Context) (tenant.Tenant, error)
	ListTenants(ctx context.Context, after string, limit int) ([]tenant.Tenant, error)
	SetQuota(ctx context.Context, q tenancy.Quota, now time.Time) error
	SetRateLimit(ctx context.Context, rl tenant.RateLimit, now time.Time) error
	CreateKey(ctx context.Context, k apikey.Key) error
	Keys(ctx context.Context, after string, limit int) ([]apikey.Key, error)
	RevokeKey(ctx context.Context, id string, now time.Time) (apikey.Key, error)
	ListAudit(ctx context.Context, tenantID tenancy.ID, before uint64, limit int) ([]audit.Entry, error)
}

// Route sends requests matching a chi pattern to an upstream.
type Route struct {
	// Pattern is a chi pattern, e.g. "/api/v1/catalog/*".
	Pattern string
	// Upstream names a proxy target.
	Upstream string
	// Public routes skip the gateway's authentication and rate limit and are
	// forwarded without identity headers (the OSB API authenticates itself).
	Public bool
	// Broker marks a public route of the Open Service Broker API: it must
	// carry HTTP Basic credentials (checked by the upstream), is rate
	// limited per broker username and audited as "osb:<username>".
	Broker bool
}

// Deps are the handler's collaborators.
type Deps struct {
	Store   Store
	Auth    *apikey.Authenticator
	Limiter *ratelimit.Limiter
	// Throttle counts failed authentications per client address and
	// refuses an address over its limit before any lookup.
	Throttle *auththrottle.Throttle
	// Addrs picks a request's client address behind trusted proxies; nil
	// uses the TCP peer.
	Addrs        *auththrottle.Resolver
	DefaultLimit tenant.RateLimit
	Proxy        *proxy.Proxy
	Routes       []Route
	Audit        *audit.Recorder
	Idempotency  *idempotency.Middleware
	// OpenAPI is the served document; nil answers 404.
	OpenAPI []byte
	Logger  *slog.Logger
	Now     func() time.Time
	// RouterOptions are passed to httpx.NewRouter.
	RouterOptions []httpx.RouterOption
	// LimitCacheTTL is how long a tenant's rate limit is cached.
	LimitCacheTTL time.Duration
	// Sessions keeps the portal's sign-in sessions; SessionTTL is how long
	// one lives.
	Sessions   session.Store
	SessionTTL time.Duration
	// Portal serves the web console at / and every path that is not the
	// API's (deep links); nil serves a short index page.
	Portal http.Handler
}

type api struct {
	Deps
	limitsMu   sync.RWMutex
	limits     map[tenancy.ID]*cachedLimit
	lastRLWarn atomic.Int64
	lastAFWarn atomic.Int64
}

type cachedLimit struct {
	limit      ratelimit.Limit
	expires    time.Time
	refreshAt  time.Time   // after this a request re-reads it in the background
	refreshing atomic.Bool // a background re-read runs
}

// NewHandler returns the gateway's complete HTTP handler.
func NewHandler(d Deps) (http.Handler, error) {
	if d.Store == nil || d.Auth == nil || d.Limiter == nil || d.Throttle == nil || d.Proxy == nil || d.Audit == nil || d.Idempotency == nil || d.Logger == nil || d.Sessions == nil {
		return nil, errors.New("new gateway handler: missing dependency")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.LimitCacheTTL <= 0 {
		d.LimitCacheTTL = 10 * time.Second
	}
	if d.SessionTTL <= 0 {
		d.SessionTTL = 12 * time.Hour
	}
	a := &api{Deps: d, limits: map[tenancy.ID]*cachedLimit{}}
	r := httpx.NewRouter(d.Logger, d.RouterOptions...)
	if d.Portal != nil {
		r.Get("/", d.Portal.ServeHTTP)
		r.NotFound(portalOrProblem(d.Portal))
	} else {
		r.Get("/", a.index)
	}
	r.Get("/api/v1/openapi.yaml", a.openapi)
	r.Post("/api/v1/sessions", a.createSession)
	for _, rt := range d.Routes {
		if !rt.Public {
			continue
		}
		t := d.Proxy.Target(rt.Upstream)
		if t == nil {
			return nil, errors.New("new gateway handler: route " + rt.Pattern + " names unknown upstream " + rt.Upstream)
		}
		if rt.Broker {
			r.With(a.brokerGuard, auditRequestsAs(d.Audit, brokerPrincipal)).Handle(rt.Pattern, t.Handler(false))
			continue
		}
		r.Handle(rt.Pattern, t.Handler(false))
	}
	var routeErr error
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate, a.rateLimit, auditRequests(d.Audit))
		r.With(d.Idempotency.Handler).Post("/api/v1/tenants", a.createTenant)
		r.Get("/api/v1/tenants", a.listTenants)
		r.Route("/api/v1/tenants/{"+tenantParam+"}", func(r chi.Router) {
			r.Get("/", a.getTenant)
			r.With(d.Idempotency.Handler).Post("/api-keys", a.createKey)
			r.Get("/api-keys", a.listKeys)
			r.Delete("/api-keys/{keyID}", a.revokeKey)
			r.Get("/quota", a.getQuota)
			r.Put("/quota", a.putQuota)
			r.Get("/rate-limit", a.getRateLimit)
			r.Put("/rate-limit", a.putRateLimit)
		})
		r.Get("/api/v1/audit", a.listAudit)
		r.Get("/api/v1/sessions/current", a.getSession)
		r.Delete("/api/v1/sessions/current", a.deleteSession)
		for _, rt := range d.Routes {
			if rt.Public {
				continue
			}
			t := d.Proxy.Target(rt.Upstream)
			if t == nil {
				routeErr = errors.New("new gateway handler: route " + rt.Pattern + " names unknown upstream " + rt.Upstream)
				return
			}
			r.Handle(rt.Pattern, t.Handler(true))
		}
	})
	if routeErr != nil {
		return nil, routeErr
	}
	return r, nil
}

// authenticate turns the bearer key, or without one the portal's session
// cookie, into a Principal in the context. An
// address with too many failed authentications is refused (429) before its
// key is looked up; every failure counts against the address.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := a.clientAddr(r)
		if d, blocked := a.Throttle.Blocked(addr); blocked {
			a.tooManyFailures(w, r, d)
			return
		}
		authz := r.Header.Get("Authorization")
		if authz == "" {
			// The portal: no key, a session cookie (an explicit key wins).
			if c, err := r.Cookie(session.CookieName); err == nil {
				a.authenticateSession(w, r, next, addr, c.Value)
				return
			}
		}
		k, err := a.Auth.AuthenticateGated(r.Context(), authz, func(ctx context.Context) error {
			return a.checkFailures(ctx, addr)
		})
		if err != nil {
			a.authFailed(w, r, addr, err, "")
			return
		}
		next.ServeHTTP(w, r.WithContext(tenancy.WithPrincipal(r.Context(), k.Principal())))
	})
}

// rateLimit applies the caller's tenant bucket (platform-admin keys without
// a tenant get a bucket per key) and sets the RateLimit-* headers.
func (a *api) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		var key string
		var lim ratelimit.Limit
		if p.Tenant != "" {
			key = "t:" + string(p.Tenant)
			lim = a.tenantLimit(r.Context(), p.Tenant)
		} else {
			key = "k:" + p.Subject
			lim = ratelimit.Limit{RPS: a.DefaultLimit.RPS, Burst: a.DefaultLimit.Burst}
		}
		if a.allow(w, r, key, lim) {
			next.ServeHTTP(w, r)
			return
		}
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusTooManyRequests, "rate limit exceeded; retry after the time in Retry-After"))
	})
}

// allow takes a token for key, sets the RateLimit-* headers and, when it
// refuses, Retry-After; the caller writes the refusal in its own format.
func (a *api) allow(w http.ResponseWriter, r *http.Request, key string, lim ratelimit.Limit) bool {
	d, err := a.Limiter.Allow(r.Context(), key, lim)
	if err != nil {
		// Fail open: a Redis outage must not take the API down. Warn at most once a second.
		now := a.Now().Unix()
		if last := a.lastRLWarn.Load(); last != now && a.lastRLWarn.CompareAndSwap(last, now) {
			a.Logger.WarnContext(r.Context(), "rate limiter unavailable; allowing requests", "err", err)
		}
		return true
	}
	h := w.Header()
	v := &[3]string{strconv.Itoa(d.Limit), strconv.Itoa(d.Remaining), strconv.Itoa(ceilSeconds(d.ResetAfter))} // one allocation
	h["Ratelimit-Limit"] = v[0:1:1]
	h["Ratelimit-Remaining"] = v[1:2:2]
	h["Ratelimit-Reset"] = v[2:3:3]
	if !d.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(d.RetryAfter))))
	}
	return d.Allowed
}

// clientAddr is the address r's failed authentications count against.
func (a *api) clientAddr(r *http.Request) string {
	if a.Addrs == nil {
		return auththrottle.ClientAddr(r.RemoteAddr)
	}
	return a.Addrs.Addr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
}

// checkFailures asks the throttle about addr before a lookup; a Redis
// failure lets the request through (the negative key cache still bounds
// the store's load), a throttled address is refused.
func (a *api) checkFailures(ctx context.Context, addr string) error {
	err := a.Throttle.Check(ctx, addr)
	if err == nil || errors.Is(err, auththrottle.ErrThrottled) {
		return err
	}
	a.warnThrottleDown(ctx, err)
	return nil
}

// countFailure records one failed authentication of addr; the request
// itself is answered as the failure it is, the following ones are refused.
func (a *api) countFailure(ctx context.Context, addr string) {
	if err := a.Throttle.Fail(ctx, addr); err != nil && !errors.Is(err, auththrottle.ErrThrottled) {
		a.warnThrottleDown(ctx, err)
	}
}

// warnThrottleDown logs a throttle outage at most once a second.
func (a *api) warnThrottleDown(ctx context.Context, err error) {
	now := a.Now().Unix()
	if last := a.lastAFWarn.Load(); last != now && a.lastAFWarn.CompareAndSwap(last, now) {
		a.Logger.WarnContext(ctx, "failed-authentication throttle unavailable; not throttling", "err", err)
	}
}

func (a *api) tooManyFailures(w http.ResponseWriter, r *http.Request, retryAfter time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(retryAfter))))
	p := httpx.NewProblem(http.StatusTooManyRequests, "too many failed authentications from this address; retry after the time in Retry-After")
	p.Type = ProblemTooManyFailures
	httpx.WriteProblem(w, r, p)
}

// ProblemTooManyFailures is the problem type of the 429 for an address with
// too many failed authentications.
const ProblemTooManyFailures = "https://canopy.dev/problems/too-many-failed-authentications"

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// tenantLimit returns the tenant's rate limit (its own or the default),
// cached; a limit in use is re-read in the background shortly before it
// expires, so busy tenants never wait for the store.
func (a *api) tenantLimit(ctx context.Context, id tenancy.ID) ratelimit.Limit {
	now := a.Now()
	a.limitsMu.RLock()
	c := a.limits[id]
	a.limitsMu.RUnlock()
	if c != nil && now.Before(c.expires) {
		if !now.Before(c.refreshAt) && c.refreshing.CompareAndSwap(false, true) {
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if _, ok := a.loadLimit(rctx, id, a.Now(), c); !ok {
					c.refreshing.Store(false) // let a later request try again
				}
			}()
		}
		return c.limit
	}
	lim, _ := a.loadLimit(ctx, id, now, nil)
	return lim
}

// loadLimit reads the tenant's rate limit and caches it; with replaces set,
// only if replaces is still the cached entry (forgetLimit wins). ok is false
// when the store failed and the default is returned uncached.
func (a *api) loadLimit(ctx context.Context, id tenancy.ID, now time.Time, replaces *cachedLimit) (ratelimit.Limit, bool) {
	rl := a.DefaultLimit
	t, err := a.Store.Tenant(tenancy.WithTenant(ctx, id))
	switch {
	case err == nil && !t.RateLimit.IsZero():
		rl = t.RateLimit
	case err != nil && !errors.Is(err, tenant.ErrNotFound):
		a.Logger.WarnContext(ctx, "read tenant rate limit; using default", "tenant", id, "err", err)
		return ratelimit.Limit{RPS: rl.RPS, Burst: rl.Burst}, false // not cached: try again next time
	}
	lim := ratelimit.Limit{RPS: rl.RPS, Burst: rl.Burst}
	fresh := &cachedLimit{limit: lim, expires: now.Add(a.LimitCacheTTL), refreshAt: now.Add(a.LimitCacheTTL - a.LimitCacheTTL/5)}
	a.limitsMu.Lock()
	if replaces == nil || a.limits[id] == replaces {
		if len(a.limits) > 100_000 {
			clear(a.limits)
		}
		a.limits[id] = fresh
	}
	a.limitsMu.Unlock()
	return lim, true
}

func (a *api) forgetLimit(id tenancy.ID) {
	a.limitsMu.Lock()
	delete(a.limits, id)
	a.limitsMu.Unlock()
}

// fail writes err, logging it when it is not a client problem.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	if _, ok := httpx.ProblemFrom(err); !ok {
		a.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	httpx.WriteError(w, r, err)
}

func (a *api) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(indexHTML))
}

func (a *api) openapi(w http.ResponseWriter, r *http.Request) {
	if a.OpenAPI == nil {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusNotFound, "the OpenAPI document is not configured on this gateway"))
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(a.OpenAPI)
}

const indexHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Canopy</title></head>
<body>
<h1>Canopy</h1>
<p>Self-hosted control plane for managed MySQL and Redis.</p>
<ul>
<li><a href="/api/v1/openapi.yaml">API reference (OpenAPI 3.0.3)</a></li>
<li><a href="/api/v1/catalog/services">Service catalog</a> (needs <code>Authorization: Bearer &lt;key&gt;</code>)</li>
<li>Open Service Broker API: <code>/v2/catalog</code></li>
</ul>
<p>The portal will be served here.</p>
</body></html>
`
