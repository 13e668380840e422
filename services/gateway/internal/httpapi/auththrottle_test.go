package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/gateway/internal/apikey"
	"github.com/canopy-platform/canopy/services/gateway/internal/auththrottle"
	"github.com/canopy-platform/canopy/services/gateway/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/gateway/migrations"
)

// countingKeys counts the key reads that reach the database.
type countingKeys struct {
	*mysqlrepo.Repo
	reads atomic.Int64
}

func (c *countingKeys) KeyByID(ctx context.Context, id string) (apikey.Key, error) {
	c.reads.Add(1)
	return c.Repo.KeyByID(ctx, id)
}

type authFixture struct {
	api      *api
	keys     *countingKeys
	handler  http.Handler
	validKey string
	rdb      redis.UniversalClient
	thCfg    auththrottle.Config
}

func newAuthFixture(t *testing.T, failures int) *authFixture {
	t.Helper()
	db := storetest.NewDB(t, t.Name())
	ctx := context.Background()
	if err := db.Migrate(ctx, migrations.FS); err != nil {
		t.Fatal(err)
	}
	repo, err := mysqlrepo.New(db)
	if err != nil {
		t.Fatal(err)
	}
	k, token, err := apikey.New("", tenancy.RolePlatformAdmin, "ops", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.PutBootstrapKey(ctx, k, time.Now()); err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{Repo: repo}
	auth, err := apikey.NewAuthenticator(keys, apikey.AuthConfig{}, obs.NopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "test:gwauth:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		if ks, err := rdb.Keys(ctx, prefix+"*").Result(); err == nil && len(ks) > 0 {
			rdb.Del(ctx, ks...)
		}
		_ = rdb.Close()
	})
	thCfg := auththrottle.Config{Prefix: prefix, Failures: failures, Window: time.Minute}
	th, err := auththrottle.New(rdb, thCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &api{Deps: Deps{Auth: auth, Throttle: th, Logger: obs.NopLogger(), Now: time.Now}}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return &authFixture{api: a, keys: keys, handler: a.authenticate(ok), validKey: token, rdb: rdb, thCfg: thCfg}
}

func (f *authFixture) call(t *testing.T, remote, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/tenants", nil)
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, req)
	return w
}

// madeUpKey returns a well-formed key that was never issued.
func madeUpKey(t *testing.T) string {
	t.Helper()
	_, token, err := apikey.New("acme", tenancy.RoleTenantAdmin, "guess", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestFailedAuthThrottledBeforeLookup: an address presenting unknown keys
// costs one database read per new key until it has used up its failures;
// then it is answered 429 with Retry-After and no read at all, while other
// addresses are unaffected.
func TestFailedAuthThrottledBeforeLookup(t *testing.T) {
	const failures = 5
	f := newAuthFixture(t, failures)
	const attacker = "203.0.113.9:40000"

	for i := range failures {
		if w := f.call(t, attacker, madeUpKey(t)); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	if n := f.keys.reads.Load(); n != failures {
		t.Fatalf("%d unknown keys cost %d reads, want %d", failures, n, failures)
	}
	for range 100 {
		w := f.call(t, attacker, madeUpKey(t))
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("after %d failures: %d %s", failures, w.Code, w.Body)
		}
		ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
		if err != nil || ra < 1 || ra > 60 {
			t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
		}
		var p map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p["type"] != ProblemTooManyFailures {
			t.Fatalf("problem %s", w.Body)
		}
	}
	// Malformed and missing keys are refused the same way, also without reads.
	for _, token := range []string{"", "garbage", "cnp_short_x"} {
		if w := f.call(t, attacker, token); w.Code != http.StatusTooManyRequests {
			t.Fatalf("token %q from a throttled address: %d", token, w.Code)
		}
	}
	if n := f.keys.reads.Load(); n != failures {
		t.Fatalf("a throttled address still caused reads: %d, want %d", n, failures)
	}

	// Another gateway replica (fresh memory, same Redis) refuses it before
	// its lookup too.
	other, err := auththrottle.New(f.rdb, f.thCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.api.Throttle = other
	if w := f.call(t, attacker, madeUpKey(t)); w.Code != http.StatusTooManyRequests {
		t.Fatalf("second replica: %d %s", w.Code, w.Body)
	}
	if n := f.keys.reads.Load(); n != failures {
		t.Fatalf("second replica read the key: %d reads, want %d", n, failures)
	}

	// Another address is served normally.
	if w := f.call(t, "198.51.100.1:5000", f.validKey); w.Code != http.StatusNoContent {
		t.Fatalf("valid key from another address: %d %s", w.Code, w.Body)
	}
	if w := f.call(t, "198.51.100.1:5000", madeUpKey(t)); w.Code != http.StatusUnauthorized {
		t.Fatalf("unknown key from another address: %d %s", w.Code, w.Body)
	}
}

// TestUnknownKeyRepeatedIsNotReadAgain: the same unknown key presented again
// within the negative cache's lifetime costs no read (and each try still
// counts as a failure of the address).
func TestUnknownKeyRepeatedIsNotReadAgain(t *testing.T) {
	f := newAuthFixture(t, 1000)
	key := madeUpKey(t)
	for range 20 {
		if w := f.call(t, "192.0.2.77:1", key); w.Code != http.StatusUnauthorized {
			t.Fatalf("unknown key: %d %s", w.Code, w.Body)
		}
	}
	if n := f.keys.reads.Load(); n != 1 {
		t.Fatalf("20 tries of one unknown key cost %d reads, want 1", n)
	}
}
