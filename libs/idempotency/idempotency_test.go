package idempotency

import (
	"context"
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

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// memStore is a Store in memory, atomic per (subject, key) like the SQL ones.
type memStore struct {
	mu   sync.Mutex
	recs map[string]memRecord
}

type memRecord struct {
	Record
	created time.Time
}

func newMemStore() *memStore { return &memStore{recs: map[string]memRecord{}} }

func (s *memStore) Begin(_ context.Context, subject, key string, hash Hash, now, notBefore time.Time) (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[subject+"\x00"+key]; ok && !r.created.Before(notBefore) {
		return r.Record, false, nil
	}
	s.recs[subject+"\x00"+key] = memRecord{Record: Record{RequestHash: hash}, created: now}
	return Record{RequestHash: hash}, true, nil
}

func (s *memStore) Complete(_ context.Context, subject, key string, status int, ct string, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs[subject+"\x00"+key]
	r.Status, r.ContentType, r.Body = status, ct, body
	s.recs[subject+"\x00"+key] = r
	return nil
}

func (s *memStore) Abort(_ context.Context, subject, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[subject+"\x00"+key]; ok && r.Status == 0 {
		delete(s.recs, subject+"\x00"+key)
	}
	return nil
}

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
	mw     *Middleware
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
	mw, err := New(Config{Store: newMemStore(), Secret: []byte("secret-0123456789abcdef"), Label: "test v1",
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
		r.Header.Set(Header, key)
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
			{key: "k", body: "b", status: 422, field: Header},
		}},
		{"another path is 422", []step{
			{key: "k", body: "a", status: 201, run: 1},
			{path: "/other", key: "k", body: "a", status: 422, field: Header},
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
			{key: strings.Repeat("k", MaxKeyLen+1), body: "a", status: 400, field: Header},
			{key: "caf\u00e9", body: "a", status: 400, field: Header},
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
				require.Equal(t, s.replayed, w.Header().Get(ReplayedHeader) == "true", "step %d replayed", i)
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
	require.Equal(t, "true", again.Header().Get(ReplayedHeader))
	require.EqualValues(t, 1, f.runs.Load())
}

func TestNewRefusesMissingParts(t *testing.T) {
	good := Config{Store: newMemStore(), Secret: []byte("s"), Label: "l", Logger: obs.NopLogger()}
	for name, mut := range map[string]func(*Config){
		"store":  func(c *Config) { c.Store = nil },
		"secret": func(c *Config) { c.Secret = nil },
		"label":  func(c *Config) { c.Label = "" },
		"logger": func(c *Config) { c.Logger = nil },
	} {
		c := good
		mut(&c)
		if _, err := New(c); err == nil {
			t.Errorf("New accepted a config without %s", name)
		}
	}
}

// TestOpenAfterRotation: an answer sealed under the previous secret is still
// replayed while that secret is listed as previous.
func TestOpenAfterRotation(t *testing.T) {
	oldSecret, newSecret := []byte("previous-secret-0123456789"), []byte("current-secret-0123456789")
	before, err := newSealer("l", oldSecret, nil)
	require.NoError(t, err)
	sealed, err := before.seal([]byte(`{"id":"acme"}`))
	require.NoError(t, err)
	during, err := newSealer("l", newSecret, [][]byte{oldSecret})
	require.NoError(t, err)
	got, err := during.open(sealed)
	require.NoError(t, err)
	require.Equal(t, `{"id":"acme"}`, string(got))
	after, err := newSealer("l", newSecret, nil)
	require.NoError(t, err)
	_, err = after.open(sealed)
	require.ErrorIs(t, err, ErrUnsealed)
	other, err := newSealer("another label", oldSecret, nil)
	require.NoError(t, err)
	_, err = other.open(sealed)
	require.ErrorIs(t, err, ErrUnsealed)
}

func TestKeyRules(t *testing.T) {
	tests := []struct {
		name, key string
		want      error
	}{
		{"absent", "", nil},
		{"plain", "orders-1", nil},
		{"longest", strings.Repeat("k", MaxKeyLen), nil},
		{"too long", strings.Repeat("k", MaxKeyLen+1), ErrInvalidKey},
		{"not ASCII", "caf\u00e9", ErrInvalidKey},
		{"control", "a\x01b", ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header[Header] = []string{tt.key}
			k, err := Key(r)
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
	require.Equal(t, HashJSONBody([]byte(`{"a": 1}`)), HashJSONBody([]byte(`{"a":1}`)), "whitespace does not count")
	require.NotEqual(t, HashJSONBody([]byte(`{"a":1}`)), HashJSONBody([]byte(`{"a":2}`)))
	require.NotEqual(t, HashRequest("POST", "/a", nil), HashRequest("POST", "/b", nil))
	require.NotEqual(t, HashRequest("POST", "/a", nil), HashRequest("PUT", "/a", nil))
	bob := alice
	bob.Subject = "apikey:b"
	require.NotEqual(t, Scope("create", alice), Scope("create", bob))
	require.NotEqual(t, Scope("create", alice), Scope("update", alice))
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
		{"other request", "h", "x", true, ErrReused, 422},
		{"other request still running", "h", "x", false, ErrReused, 422},
		{"still running", "h", "h", false, ErrInProgress, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verdict([]byte(tt.stored), []byte(tt.got), tt.finished)
			require.ErrorIs(t, err, tt.want)
			if tt.want == nil {
				require.NoError(t, err)
				require.Nil(t, Problem(err))
				return
			}
			require.Equal(t, tt.status, Problem(err).Status)
		})
	}
	require.Equal(t, 400, Problem(ErrInvalidKey).Status)
	require.Nil(t, Problem(errors.New("other")))
}
