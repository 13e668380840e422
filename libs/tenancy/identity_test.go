package tenancy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1_700_000_000, 0)
	good := Principal{Tenant: "acme", Role: RoleTenantAdmin, Subject: "apikey:k1"}

	tests := []struct {
		name    string
		p       Principal
		mutate  func(h http.Header)
		at      time.Time
		secret  []byte
		wantErr bool
	}{
		{name: "valid", p: good, at: now},
		{name: "platform admin without tenant", p: Principal{Role: RolePlatformAdmin, Subject: "apikey:root"}, at: now},
		{name: "subject with separator", p: Principal{Tenant: "acme", Role: RoleTenantViewer, Subject: "a|b|c"}, at: now},
		{name: "within skew", p: good, at: now.Add(4 * time.Minute)},
		{name: "stale", p: good, at: now.Add(6 * time.Minute), wantErr: true},
		{name: "from the future", p: good, at: now.Add(-6 * time.Minute), wantErr: true},
		{name: "wrong secret", p: good, at: now, secret: []byte("other"), wantErr: true},
		{name: "tenant swapped", p: good, at: now, mutate: func(h http.Header) { h.Set(HTTPHeader, "evil") }, wantErr: true},
		{name: "role raised", p: good, at: now, mutate: func(h http.Header) { h.Set(RoleHeader, string(RolePlatformAdmin)) }, wantErr: true},
		{name: "subject changed", p: good, at: now, mutate: func(h http.Header) { h.Set(SubjectHeader, "x") }, wantErr: true},
		{name: "time changed", p: good, at: now, mutate: func(h http.Header) { h.Set(AuthTimeHeader, "1700000001") }, wantErr: true},
		{name: "malformed time", p: good, at: now, mutate: func(h http.Header) { h.Set(AuthTimeHeader, "soon") }, wantErr: true},
		{name: "no signature", p: good, at: now, mutate: func(h http.Header) { h.Del(SignatureHeader) }, wantErr: true},
		{name: "tenant role without tenant", p: Principal{Role: RoleTenantMember, Subject: "x"}, at: now, wantErr: true},
		{name: "unknown role", p: Principal{Tenant: "acme", Role: "root", Subject: "x"}, at: now, wantErr: true},
		{name: "bad tenant id", p: Principal{Tenant: "ACME!", Role: RoleTenantViewer, Subject: "x"}, at: now, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			Sign(h, secret, tt.p, now)
			if tt.mutate != nil {
				tt.mutate(h)
			}
			vs := secret
			if tt.secret != nil {
				vs = tt.secret
			}
			got, err := Verify(h, vs, tt.at, DefaultMaxSkew)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Verify = %+v, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.p {
				t.Fatalf("Verify = %+v, want %+v", got, tt.p)
			}
		})
	}
}

func TestSignOverwritesForgedHeaders(t *testing.T) {
	h := http.Header{}
	h.Set(HTTPHeader, "evil")
	h.Set(RoleHeader, string(RolePlatformAdmin))
	Sign(h, []byte("k"), Principal{Role: RolePlatformAdmin, Subject: "s"}, time.Now())
	if _, ok := h[HTTPHeader]; ok {
		t.Fatalf("empty tenant must remove the tenant header, got %q", h.Get(HTTPHeader))
	}
}

func TestMiddleware(t *testing.T) {
	secret := []byte("s3cret")
	var seen Principal
	var seenTenant ID
	h := Middleware(secret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = PrincipalFrom(r.Context())
		seenTenant, _ = FromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))

	t.Run("accepts signed request", func(t *testing.T) {
		p := Principal{Tenant: "acme", Role: RoleTenantMember, Subject: "apikey:1"}
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		Sign(r.Header, secret, p, time.Now())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			t.Fatalf("status = %d", w.Code)
		}
		if seen != p || seenTenant != "acme" {
			t.Fatalf("principal = %+v tenant = %q", seen, seenTenant)
		}
	})

	t.Run("rejects unsigned request with problem", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set(HTTPHeader, "acme")
		r.Header.Set(RoleHeader, string(RolePlatformAdmin))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("status = %d", w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("content type = %q", ct)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("body: %v", err)
		}
		if body["status"] != float64(401) || body["title"] == "" {
			t.Fatalf("body = %v", body)
		}
	})
}

func TestPrincipalContext(t *testing.T) {
	ctx := t.Context()
	if _, ok := PrincipalFrom(ctx); ok {
		t.Fatal("empty context has a principal")
	}
	ctx = WithPrincipal(ctx, Principal{Role: RolePlatformAdmin, Subject: "root"})
	if _, ok := FromContext(ctx); ok {
		t.Fatal("platform admin without tenant must not set a tenant")
	}
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Role != RolePlatformAdmin {
		t.Fatalf("principal = %+v %v", p, ok)
	}
}

func BenchmarkSign(b *testing.B) {
	h := http.Header{}
	p := Principal{Tenant: "acme", Role: RoleTenantAdmin, Subject: "apikey:01HXYZ"}
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		Sign(h, secret, p, now)
	}
}

func TestSignerMatchesSign(t *testing.T) {
	secret := []byte("s3cret")
	s := NewSigner(secret)
	now := time.Unix(1_700_000_000, 0)
	for _, p := range []Principal{
		{Tenant: "acme", Role: RoleTenantAdmin, Subject: "apikey:1"},
		{Role: RolePlatformAdmin, Subject: "apikey:root"},
	} {
		for _, at := range []time.Time{now, now.Add(300 * time.Millisecond), now.Add(2 * time.Second)} {
			want, got := http.Header{}, http.Header{}
			Sign(want, secret, p, at)
			s.Sign(got, p, at)
			for _, k := range []string{HTTPHeader, RoleHeader, SubjectHeader, AuthTimeHeader, SignatureHeader} {
				if want.Get(k) != got.Get(k) {
					t.Fatalf("%s: Signer %q, Sign %q", k, got.Get(k), want.Get(k))
				}
			}
			if _, err := Verify(got, secret, at, DefaultMaxSkew); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
	}
}

func BenchmarkSigner(b *testing.B) {
	h := http.Header{}
	p := Principal{Tenant: "acme", Role: RoleTenantAdmin, Subject: "apikey:01HXYZ"}
	s := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(h, p, now)
	}
}
