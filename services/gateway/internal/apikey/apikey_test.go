package apikey

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

type memStore struct {
	mu      sync.Mutex
	keys    map[string]Key
	lookups int
	touched map[string]time.Time
}

func (m *memStore) KeyByID(_ context.Context, id string) (Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	k, ok := m.keys[id]
	if !ok {
		return Key{}, ErrNotFound
	}
	return k, nil
}

func (m *memStore) TouchKeys(_ context.Context, used map[string]time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, t := range used {
		m.touched[id] = t
	}
	return nil
}

func TestTokenRoundTrip(t *testing.T) {
	k, token, err := New("acme", tenancy.RoleTenantAdmin, "ci", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, TokenPrefix+k.ID+"_") || !ValidID(k.ID) {
		t.Fatalf("token %q, id %q", token, k.ID)
	}
	id, secret, ok := ParseToken(token)
	if !ok || id != k.ID || !k.Matches(secret) || k.Matches(secret+"x") {
		t.Fatalf("parse: %q %q %v", id, secret, ok)
	}
	for _, bad := range []string{"", "cnp_", "cnp_short_x", "cnp_" + k.ID, "cnp_" + k.ID + "_", "xyz_" + k.ID + "_abc"} {
		if _, _, ok := ParseToken(bad); ok {
			t.Fatalf("ParseToken(%q) accepted", bad)
		}
	}
	boot := FromToken("a-long-operator-chosen-key", tenancy.RolePlatformAdmin, "bootstrap", time.Now())
	if boot.ID != BootstrapID || !boot.Matches("a-long-operator-chosen-key") {
		t.Fatalf("bootstrap key %+v", boot)
	}
}

func TestAuthenticatorCachesAndInvalidates(t *testing.T) {
	k, token, _ := New("acme", tenancy.RoleTenantMember, "ci", time.Now())
	st := &memStore{keys: map[string]Key{k.ID: k}, touched: map[string]time.Time{}}
	now := time.Unix(1_700_000_000, 0)
	a, err := NewAuthenticator(st, AuthConfig{CacheTTL: time.Minute}, obs.NopLogger(), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 {
		got, err := a.Authenticate(ctx, "Bearer "+token)
		if err != nil || got.Principal() != (tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:" + k.ID}) {
			t.Fatalf("Authenticate = %+v, %v", got, err)
		}
	}
	if st.lookups != 1 {
		t.Fatalf("lookups = %d, want 1 (cached)", st.lookups)
	}
	// Revoked in the store and invalidated: refused at once.
	revoked := k
	rt := now
	revoked.RevokedAt = &rt
	st.keys[k.ID] = revoked
	a.Invalidate(k.ID)
	if _, err := a.Authenticate(ctx, "Bearer "+token); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("revoked key: %v", err)
	}
	// Last-used times are flushed in a batch, including for the evicted entry.
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := st.touched[k.ID]; !got.Equal(now) {
		t.Fatalf("touched = %v, want %v", got, now)
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic abc", "bearer " + token + "x"} {
		if _, err := a.Authenticate(ctx, h); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Authenticate(%q) = %v", h, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{"ci": true, "": false, "   ": false, strings.Repeat("x", 101): false, "tab\tname": false, "ünïcode ok": true} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Fatalf("ValidateName(%q) = %v", name, err)
		}
	}
}

func (m *memStore) lookupCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookups
}

// TestUnknownKeysCostOneLookup: an unknown key id is read from the store
// once per NegativeTTL, and a flood of made-up ids neither grows the cache
// without bound nor pushes a known key out of it.
func TestUnknownKeysCostOneLookup(t *testing.T) {
	k, token, _ := New("acme", tenancy.RoleTenantMember, "ci", time.Now())
	st := &memStore{keys: map[string]Key{k.ID: k}, touched: map[string]time.Time{}}
	now := time.Unix(1_700_000_000, 0)
	a, err := NewAuthenticator(st, AuthConfig{CacheTTL: time.Minute, NegativeTTL: 5 * time.Second, MaxUnknown: 100},
		obs.NopLogger(), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	unknown, _, _ := New("acme", tenancy.RoleTenantMember, "never stored", now)
	unknownToken := TokenPrefix + unknown.ID + "_secret"
	for range 50 {
		if _, err := a.Authenticate(ctx, "Bearer "+unknownToken); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := st.lookupCount(); n != 1 {
		t.Fatalf("50 tries of one unknown key cost %d lookups, want 1", n)
	}
	now = now.Add(5 * time.Second)
	_, _ = a.Authenticate(ctx, "Bearer "+unknownToken)
	if n := st.lookupCount(); n != 2 {
		t.Fatalf("after NegativeTTL: %d lookups, want 2", n)
	}

	if _, err := a.Authenticate(ctx, "Bearer "+token); err != nil {
		t.Fatal(err)
	}
	before := st.lookupCount()
	for i := range 1000 {
		made, _, _ := New("acme", tenancy.RoleTenantMember, "flood", now.Add(time.Duration(i)*time.Millisecond))
		_, _ = a.Authenticate(ctx, "Bearer "+TokenPrefix+made.ID+"_x")
	}
	a.mu.RLock()
	size := len(a.unknown)
	a.mu.RUnlock()
	if size > 100 {
		t.Fatalf("unknown-id cache holds %d, bound 100", size)
	}
	if _, err := a.Authenticate(ctx, "Bearer "+token); err != nil {
		t.Fatal(err)
	}
	if n := st.lookupCount() - before; n != 1000 {
		t.Fatalf("the known key was read again after the flood (%d lookups for 1000 unknown ids)", n)
	}
}

// TestGateRunsOnlyBeforeStoreReads: the gate refuses without a read, and is
// not consulted for answers the cache holds.
func TestGateRunsOnlyBeforeStoreReads(t *testing.T) {
	k, token, _ := New("acme", tenancy.RoleTenantMember, "ci", time.Now())
	st := &memStore{keys: map[string]Key{k.ID: k}, touched: map[string]time.Time{}}
	a, err := NewAuthenticator(st, AuthConfig{CacheTTL: time.Minute}, obs.NopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	refused := errors.New("throttled")
	gates := 0
	closed := func(context.Context) error { gates++; return refused }
	open := func(context.Context) error { gates++; return nil }
	if _, err := a.AuthenticateGated(ctx, "Bearer "+token, closed); !errors.Is(err, refused) || st.lookupCount() != 0 {
		t.Fatalf("closed gate: %v, %d lookups", err, st.lookupCount())
	}
	if _, err := a.AuthenticateGated(ctx, "Bearer "+token, open); err != nil || st.lookupCount() != 1 {
		t.Fatalf("open gate: %v, %d lookups", err, st.lookupCount())
	}
	if _, err := a.AuthenticateGated(ctx, "Bearer "+token, closed); err != nil {
		t.Fatalf("a cached key does not pass the gate: %v", err)
	}
	if gates != 2 || st.lookupCount() != 1 {
		t.Fatalf("gate asked %d times, %d lookups; want 2 and 1", gates, st.lookupCount())
	}
}

// TestAuthenticateID resolves a key by id (a portal session's key) through
// the cache, and refuses unknown, malformed and revoked ones.
func TestAuthenticateID(t *testing.T) {
	k, _, _ := New("acme", tenancy.RoleTenantViewer, "portal", time.Now())
	st := &memStore{keys: map[string]Key{k.ID: k}, touched: map[string]time.Time{}}
	now := time.Unix(1_700_000_000, 0)
	a, err := NewAuthenticator(st, AuthConfig{CacheTTL: time.Minute}, obs.NopLogger(), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		got, err := a.AuthenticateID(ctx, k.ID, nil)
		if err != nil || got.ID != k.ID || got.Role != tenancy.RoleTenantViewer {
			t.Fatalf("AuthenticateID = %+v, %v", got, err)
		}
	}
	if st.lookups != 1 {
		t.Fatalf("lookups = %d, want 1 (cached)", st.lookups)
	}
	for _, id := range []string{"", "not-an-id", strings.Repeat("z", 26)} {
		if _, err := a.AuthenticateID(ctx, id, nil); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("AuthenticateID(%q) = %v", id, err)
		}
	}
	revoked := k
	rt := now
	revoked.RevokedAt = &rt
	st.keys[k.ID] = revoked
	a.Invalidate(k.ID)
	if _, err := a.AuthenticateID(ctx, k.ID, nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("revoked key: %v", err)
	}
}
