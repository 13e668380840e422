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
