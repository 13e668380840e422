package engineclient

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

const secret = "test-internal-secret-0123456789"

// provisioning stands in for provisioning's engines view: signed requests
// only, the body it is given, 503 while down.
type provisioning struct {
	srv   *httptest.Server
	calls atomic.Int64
	down  atomic.Bool
	mu    sync.Mutex
	body  string
}

func newProvisioning(t *testing.T, body string) *provisioning {
	p := &provisioning{body: body}
	h := tenancy.Middleware(tenancy.AudienceProvisioning, []byte(secret))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := tenancy.PrincipalFrom(r.Context()); !ok || r.URL.Path != Path {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if p.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(p.body))
	}))
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provisioning) set(body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body = body
}

const (
	both = `{"reported":true,"items":[{"engine":"mysql","flavor":"mariadb","version":"10.11.19","series":"10.11","label":"mariadb-10.11.19"},` +
		`{"engine":"redis","flavor":"redis","version":"7.0.15","series":"7.0","label":"redis-7.0.15"}]}`
	redisOnly = `{"reported":true,"items":[{"engine":"redis","flavor":"redis","version":"7.0.15","series":"7.0","label":"redis-7.0.15"}]}`
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClient(t *testing.T, base func() string, c *clock, log *bytes.Buffer) *Client {
	cl, err := New(Config{BaseURL: base, Secret: []byte(secret), Now: c.now, Logger: slog.New(slog.NewTextHandler(log, nil))})
	require.NoError(t, err)
	return cl
}

func TestBuildsCachedAndRefreshed(t *testing.T) {
	p := newProvisioning(t, both)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var log bytes.Buffer
	cl := newClient(t, func() string { return p.srv.URL }, c, &log)
	ctx := context.Background()

	b, known := cl.Builds(ctx)
	require.True(t, known)
	require.Equal(t, []plan.Build{{Engine: plan.MySQL, Series: "10.11", Label: "mariadb-10.11.19"}, {Engine: plan.Redis, Series: "7.0", Label: "redis-7.0.15"}}, b)
	require.Contains(t, log.String(), "mariadb-10.11.19")
	c.add(DefaultTTL - time.Second)
	cl.Builds(ctx)
	require.EqualValues(t, 1, p.calls.Load(), "answered from the cache within the TTL")

	p.set(redisOnly)
	c.add(2 * time.Second)
	b, known = cl.Builds(ctx)
	require.True(t, known)
	require.Equal(t, []plan.Build{{Engine: plan.Redis, Series: "7.0", Label: "redis-7.0.15"}}, b, "asked again after the TTL")
	require.EqualValues(t, 2, p.calls.Load())

	// Down: the last list is served, one ask per RetryAfter, one log line.
	p.down.Store(true)
	log.Reset()
	c.add(DefaultTTL)
	for range 3 {
		b, known = cl.Builds(ctx)
		require.True(t, known)
		require.Len(t, b, 1)
	}
	require.EqualValues(t, 3, p.calls.Load())
	c.add(DefaultRetryAfter)
	cl.Builds(ctx)
	require.EqualValues(t, 4, p.calls.Load())
	require.Equal(t, 1, strings.Count(log.String(), "last known list"), log.String())

	// Back: the new answer, and it says so.
	p.down.Store(false)
	p.set(both)
	c.add(DefaultRetryAfter)
	b, _ = cl.Builds(ctx)
	require.Len(t, b, 2)
	require.Contains(t, log.String(), "the catalog offers their versions")
}

func TestBuildsUnknown(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var log bytes.Buffer
	// Never answered (no address yet, as in the all-in-one binary before provisioning listens).
	url := ""
	p := newProvisioning(t, `{"reported":false,"items":[]}`)
	cl := newClient(t, func() string { return url }, c, &log)
	b, known := cl.Builds(context.Background())
	require.False(t, known)
	require.Nil(t, b)
	require.Contains(t, log.String(), "unfiltered")

	// A driver that does not report: unknown as well, not "runs nothing".
	url = p.srv.URL
	c.add(DefaultRetryAfter)
	_, known = cl.Builds(context.Background())
	require.False(t, known)
	require.Contains(t, log.String(), "does not report")

	// A driver that reports nothing runs: known, and empty.
	p.set(`{"reported":true,"items":[]}`)
	c.add(DefaultTTL)
	b, known = cl.Builds(context.Background())
	require.True(t, known)
	require.Empty(t, b)
}
