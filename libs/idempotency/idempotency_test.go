package idempotency_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/idempotency/idempotencytest"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var alice = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:a"}

// fixture is a creating handler behind the middleware; it counts its runs
// and answers with the run number, or with status when set.
type fixture struct {
	mw     *idempotency.Middleware
	clk    *clock
	runs   atomic.Int64
	status atomic.Int64
	panics atomic.Bool
	gate   chan struct{} // when set, the handler waits on it
	h      http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clk: &clock{now: time.Unix(1_700_000_000, 0)}}
	mw, err := idempotency.New(idempotency.Config{Store: idempotencytest.NewMemStore(), Secret: []byte("secret-0123456789abcdef"), Label: "test v1",
		TTL: time.Hour, Logger: obs.NopLogger(), Now: f.clk.Now})
	require.NoError(t, err)
	f.mw = mw
	f.h = mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.runs.Add(1)
		if f.gate != nil {
			<-f.gate
		}
		if f.panics.Load() {
			panic("boom")
		}
		body, _ := io.ReadAll(r.Body)
		status := int(f.status.Load())
		if status == 0 {
			status = http.StatusCreated
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"run": n, "body": string(body)})
	}))
	return f
}

func (f *fixture) do(p *tenancy.Principal, path, key, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if key != "" {
		r.Header.Set(idempotency.Header, key)
	}
	if p != nil {
		r = r.WithContext(tenancy.WithPrincipal(r.Context(), *p))
	}
	w := httptest.NewRecorder()
	func() {
		defer func() { _ = recover() }()
		f.h.ServeHTTP(w, r)
	}()
	return w
}

func TestMiddleware(t *testing.T) {
	bob := tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:b"}
	tests := []struct {
		name string
		// steps run in order; each names the request and what it must get.
		steps []step
	}{
		{"replay of the first answer", []step{
			{key: "k", body: "a", status: 201, run: 1},
			{key: "k", body: "a", status: 201, run: 1, replayed: true},
		}},
		{"another body is 422", []step{
			{key: "k", body: "a", status: 201, run: 1},
			{key: "k", body: "b", status: 422, field: idempotency.Header},
		}},
		{"another path is 422", []step{
			{key: "k", body: "a", status: 201, run: 1},
			{path: "/other", key: "k", body: "a", status: 422, field: idempotency.Header},
		}},
		{"keys are per caller", []step{
			{key: "k", body: "a", status: 201, run: 1},
			{who: &bob, key: "k", body: "b", status: 201, run: 2},
		}},
		{"no key runs every time", []step{
			{body: "a", status: 201, run: 1},
			{body: "a", status: 201, run: 2},
		}},
		{"invalid key is 400", []step{
			{key: strings.Repeat("k", idempotency.MaxKeyLen+1), body: "a", status: 400, field: idempotency.Header},
			{key: "caf\u00e9", body: "a", status: 400, field: idempotency.Header},
		}},
		{"no principal passes through", []step{
			{anonymous: true, key: "k", body: "a", status: 201, run: 1},
			{anonymous: true, key: "k", body: "a", status: 201, run: 2},
		}},
		{"a 5xx is not kept", []step{
			{key: "k", body: "a", answer: 503, status: 503, run: 1},
			{key: "k", body: "a", status: 201, run: 2},
		}},
		{"a 4xx is kept", []step{
			{key: "k", body: "a", answer: 409, status: 409, run: 1},
			{key: "k", body: "a", status: 409, run: 1, replayed: true},
		}},
		{"a panic is not kept", []step{
			{key: "k", body: "a", panics: true, run: 1},
			{key: "k", body: "a", status: 201, run: 2},
		}},
		{"forgotten after the TTL", []step{
			{key: "k", body: "a", status: 201, run: 1},
			{after: 2 * time.Hour, key: "k", body: "b", status: 201, run: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for i, s := range tt.steps {
				f.clk.add(s.after)
				f.status.Store(int64(s.answer))
				f.panics.Store(s.panics)
				who := &alice
				if s.who != nil {
					who = s.who
				}
				if s.anonymous {
					who = nil
				}
				path := "/things"
				if s.path != "" {
					path = s.path
				}
				w := f.do(who, path, s.key, s.body)
				if s.panics {
					continue
				}
				require.Equal(t, s.status, w.Code, "step %d: %s", i, w.Body)
				require.Equal(t, s.replayed, w.Header().Get(idempotency.ReplayedHeader) == "true", "step %d replayed", i)
				if s.field != "" {
					var p struct {
						Errors []struct{ Field string } `json:"errors"`
					}
					require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p))
					require.Equal(t, s.field, p.Errors[0].Field)
					continue
				}
				var got struct{ Run int64 }
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &got))
				require.Equal(t, s.run, got.Run, "step %d: %s", i, w.Body)
			}
		})
	}
}

type step struct {
	who       *tenancy.Principal
	anonymous bool
	path      string
	key, body string
	after     time.Duration
	answer    int // the handler's status; 201 when zero
	panics    bool
	status    int
	run       int64
	replayed  bool
	field     string
}

// TestConcurrentFirstUses: of concurrent first uses of one key the handler
// runs once; the others get 409 with Retry-After while it runs, and the
// first answer once it has finished.
func TestConcurrentFirstUses(t *testing.T) {
	f := newFixture(t)
	f.gate = make(chan struct{})
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- f.do(&alice, "/things", "k", "a") }()
	deadline := time.Now().Add(5 * time.Second)
	for f.runs.Load() == 0 {
		require.True(t, time.Now().Before(deadline), "the first request never ran")
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	codes := make(chan *httptest.ResponseRecorder, 8)
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); codes <- f.do(&alice, "/things", "k", "a") }()
	}
	wg.Wait()
	close(codes)
	for w := range codes {
		require.Equal(t, http.StatusConflict, w.Code)
		require.Equal(t, "1", w.Header().Get("Retry-After"))
	}
	close(f.gate)
	require.Equal(t, http.StatusCreated, (<-first).Code)
	again := f.do(&alice, "/things", "k", "a")
	require.Equal(t, http.StatusCreated, again.Code)
	require.Equal(t, "true", again.Header().Get(idempotency.ReplayedHeader))
	require.EqualValues(t, 1, f.runs.Load())
}

func TestNewRefusesMissingParts(t *testing.T) {
	good := idempotency.Config{Store: idempotencytest.NewMemStore(), Secret: []byte("s"), Label: "l", Logger: obs.NopLogger()}
	for name, mut := range map[string]func(*idempotency.Config){
		"store":  func(c *idempotency.Config) { c.Store = nil },
		"secret": func(c *idempotency.Config) { c.Secret = nil },
		"label":  func(c *idempotency.Config) { c.Label = "" },
		"logger": func(c *idempotency.Config) { c.Logger = nil },
	} {
		c := good
		mut(&c)
		if _, err := idempotency.New(c); err == nil {
			t.Errorf("New accepted a config without %s", name)
		}
	}
}

func TestKeyRules(t *testing.T) {
	tests := []struct {
		name, key string
		want      error
	}{
		{"absent", "", nil},
		{"plain", "orders-1", nil},
		{"longest", strings.Repeat("k", idempotency.MaxKeyLen), nil},
		{"too long", strings.Repeat("k", idempotency.MaxKeyLen+1), idempotency.ErrInvalidKey},
		{"not ASCII", "caf\u00e9", idempotency.ErrInvalidKey},
		{"control", "a\x01b", idempotency.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header[idempotency.Header] = []string{tt.key}
			k, err := idempotency.Key(r)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.key, k)
		})
	}
}

func TestFingerprints(t *testing.T) {
	require.Equal(t, idempotency.HashJSONBody([]byte(`{"a": 1}`)), idempotency.HashJSONBody([]byte(`{"a":1}`)), "whitespace does not count")
	require.NotEqual(t, idempotency.HashJSONBody([]byte(`{"a":1}`)), idempotency.HashJSONBody([]byte(`{"a":2}`)))
	// Fingerprints stored before the lib (catalog rows, provisioning's
	// instances) are the hex SHA-256 of the compact body: they still match.
	compact := sha256.Sum256([]byte(`{"a":1}`))
	require.Equal(t, hex.EncodeToString(compact[:]), idempotency.HashJSONBody([]byte(`{ "a" : 1 }`)))
	require.NotEqual(t, idempotency.HashRequest("POST", "/a", nil), idempotency.HashRequest("POST", "/b", nil))
	require.NotEqual(t, idempotency.HashRequest("POST", "/a", nil), idempotency.HashRequest("PUT", "/a", nil))
	bob := alice
	bob.Subject = "apikey:b"
	require.NotEqual(t, idempotency.Scope("create", alice), idempotency.Scope("create", bob))
	require.NotEqual(t, idempotency.Scope("create", alice), idempotency.Scope("update", alice))
}

func TestVerdictAndProblems(t *testing.T) {
	tests := []struct {
		name        string
		stored, got string
		finished    bool
		want        error
		status      int
	}{
		{"replay", "h", "h", true, nil, 0},
		{"other request", "h", "x", true, idempotency.ErrReused, 422},
		{"other request still running", "h", "x", false, idempotency.ErrReused, 422},
		{"still running", "h", "h", false, idempotency.ErrInProgress, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := idempotency.Verdict([]byte(tt.stored), []byte(tt.got), tt.finished)
			require.ErrorIs(t, err, tt.want)
			if tt.want == nil {
				require.NoError(t, err)
				require.Nil(t, idempotency.Problem(err))
				return
			}
			require.Equal(t, tt.status, idempotency.Problem(err).Status)
		})
	}
	require.Equal(t, 400, idempotency.Problem(idempotency.ErrInvalidKey).Status)
	require.Nil(t, idempotency.Problem(errors.New("other")))
}

func TestMemStoreConformance(t *testing.T) {
	idempotencytest.Run(t, func(*testing.T) idempotency.Store { return idempotencytest.NewMemStore() })
}
