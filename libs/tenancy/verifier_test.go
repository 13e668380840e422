package tenancy

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var (
	testSecret = []byte("current-secret-0123456789")
	oldSecret  = []byte("previous-secret-0123456789")
	testNow    = time.Unix(1_700_000_000, 0)
)

func signerAt(secret []byte, at time.Time) *Signer {
	s := NewSigner(secret)
	s.now = func() time.Time { return at }
	return s
}

func verifierAt(t testing.TB, audience string, at *time.Time, secrets ...[]byte) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{Audience: audience, Secrets: secrets, Now: func() time.Time { return *at }})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	good := Principal{Tenant: "acme", Role: RoleTenantAdmin, Subject: "apikey:k1"}
	body := sha256.Sum256([]byte(`{"name":"db1"}`))

	type req struct {
		method, target string
		body           [sha256.Size]byte
	}
	sent := req{http.MethodPost, "/api/v1/instances?dry_run=true", body}
	tests := []struct {
		name     string
		p        Principal
		audience string // signer's audience; the verifier's is "provisioning"
		secret   []byte
		at       time.Duration // verifier clock minus signing time
		received *req          // what the verifier sees; nil means what was signed
		mutate   func(h http.Header)
		wantErr  bool
	}{
		{name: "valid", p: good},
		{name: "platform admin without tenant", p: Principal{Role: RolePlatformAdmin, Subject: "service:healthcheck"}},
		{name: "subject with separators", p: Principal{Tenant: "acme", Role: RoleTenantViewer, Subject: "a|b\tc"}},
		{name: "at the end of its validity", p: good, at: DefaultValidity + DefaultClockSkew},
		{name: "slightly in the future", p: good, at: -DefaultClockSkew},
		{name: "expired", p: good, at: DefaultValidity + DefaultClockSkew + time.Second, wantErr: true},
		{name: "from the future", p: good, at: -DefaultClockSkew - time.Second, wantErr: true},
		{name: "wrong secret", p: good, secret: []byte("other-secret-0123456789"), wantErr: true},
		{name: "other audience", p: good, audience: AudienceCatalog, wantErr: true},
		{name: "method changed", p: good, received: &req{http.MethodDelete, sent.target, body}, wantErr: true},
		{name: "path changed", p: good, received: &req{sent.method, "/api/v1/instances/x?dry_run=true", body}, wantErr: true},
		{name: "query changed", p: good, received: &req{sent.method, "/api/v1/instances?dry_run=false", body}, wantErr: true},
		{name: "query dropped", p: good, received: &req{sent.method, "/api/v1/instances", body}, wantErr: true},
		{name: "body changed", p: good, received: &req{sent.method, sent.target, sha256.Sum256([]byte(`{"name":"db2"}`))}, wantErr: true},
		{name: "body dropped", p: good, received: &req{sent.method, sent.target, EmptyBodyHash}, wantErr: true},
		{name: "tenant swapped", p: good, mutate: func(h http.Header) { h.Set(HTTPHeader, "evil") }, wantErr: true},
		{name: "role raised", p: good, mutate: func(h http.Header) { h.Set(RoleHeader, string(RolePlatformAdmin)) }, wantErr: true},
		{name: "subject changed", p: good, mutate: func(h http.Header) { h.Set(SubjectHeader, "service:healthcheck") }, wantErr: true},
		{name: "time changed", p: good, mutate: func(h http.Header) { h.Set(AuthTimeHeader, "1700000001") }, wantErr: true},
		{name: "nonce changed", p: good, mutate: func(h http.Header) { h.Set(NonceHeader, "n2") }, wantErr: true},
		{name: "no nonce", p: good, mutate: func(h http.Header) { h.Del(NonceHeader) }, wantErr: true},
		{name: "malformed time", p: good, mutate: func(h http.Header) { h.Set(AuthTimeHeader, "soon") }, wantErr: true},
		{name: "malformed signature", p: good, mutate: func(h http.Header) { h.Set(SignatureHeader, strings.Repeat("zz", 32)) }, wantErr: true},
		{name: "no signature", p: good, mutate: func(h http.Header) { h.Del(SignatureHeader) }, wantErr: true},
		{name: "tenant role without tenant", p: Principal{Role: RoleTenantMember, Subject: "x"}, wantErr: true},
		{name: "unknown role", p: Principal{Tenant: "acme", Role: "root", Subject: "x"}, wantErr: true},
		{name: "bad tenant id", p: Principal{Tenant: "ACME!", Role: RoleTenantViewer, Subject: "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, aud := testSecret, AudienceProvisioning
			if tt.secret != nil {
				secret = tt.secret
			}
			if tt.audience != "" {
				aud = tt.audience
			}
			h := http.Header{}
			signerAt(secret, testNow).Sign(h, sent.method, sent.target, sent.body, aud, tt.p)
			if tt.mutate != nil {
				tt.mutate(h)
			}
			got := sent
			if tt.received != nil {
				got = *tt.received
			}
			at := testNow.Add(tt.at)
			p, err := verifierAt(t, AudienceProvisioning, &at, testSecret).Verify(h, got.method, got.target, got.body)
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("Verify = %+v, %v; want ErrUnauthenticated", p, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p != tt.p {
				t.Fatalf("Verify = %+v, want %+v", p, tt.p)
			}
		})
	}
}

func TestVerifyRefusesReplays(t *testing.T) {
	now := testNow
	v := verifierAt(t, AudienceCatalog, &now, testSecret)
	s := signerAt(testSecret, testNow)
	p := Principal{Role: RolePlatformAdmin, Subject: "service:scheduling"}

	first, second := http.Header{}, http.Header{}
	s.Sign(first, http.MethodGet, "/api/v1/catalog/plans/p1", EmptyBodyHash, AudienceCatalog, p)
	s.Sign(second, http.MethodGet, "/api/v1/catalog/plans/p1", EmptyBodyHash, AudienceCatalog, p)
	if first.Get(NonceHeader) == second.Get(NonceHeader) || first.Get(SignatureHeader) == second.Get(SignatureHeader) {
		t.Fatal("two signings of the same request share a nonce or signature")
	}
	for _, h := range []http.Header{first, second} {
		if _, err := v.Verify(h, http.MethodGet, "/api/v1/catalog/plans/p1", EmptyBodyHash); err != nil {
			t.Fatalf("identical request with its own nonce refused: %v", err)
		}
	}
	now = now.Add(DefaultValidity) // still fresh: only the cache can refuse it
	if _, err := v.Verify(first, http.MethodGet, "/api/v1/catalog/plans/p1", EmptyBodyHash); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: err = %v, want ErrReplayed", err)
	}
}

func TestRotation(t *testing.T) {
	now := testNow
	req := func(s *Signer) http.Header {
		h := http.Header{}
		s.Sign(h, http.MethodGet, "/internal/v1/tenants/acme/quota", EmptyBodyHash, AudienceGateway,
			Principal{Role: RolePlatformAdmin, Subject: "service:provisioning"})
		return h
	}
	verify := func(v *Verifier, h http.Header) error {
		_, err := v.Verify(h, http.MethodGet, "/internal/v1/tenants/acme/quota", EmptyBodyHash)
		return err
	}
	oldSigner, newSigner := signerAt(oldSecret, testNow), signerAt(testSecret, testNow)

	// Step 1: verifiers learn the new secret as current, the old as previous.
	during := verifierAt(t, AudienceGateway, &now, testSecret, oldSecret)
	if err := verify(during, req(oldSigner)); err != nil {
		t.Fatalf("old secret refused while listed as previous: %v", err)
	}
	if err := verify(during, req(newSigner)); err != nil {
		t.Fatalf("new secret refused: %v", err)
	}
	// Step 2: the previous secret is removed.
	after := verifierAt(t, AudienceGateway, &now, testSecret, nil)
	if err := verify(after, req(oldSigner)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old secret after removal: err = %v, want ErrUnauthenticated", err)
	}
	if err := verify(after, req(newSigner)); err != nil {
		t.Fatalf("new secret refused after rotation: %v", err)
	}
}

func TestNewVerifierRefusesMissingConfig(t *testing.T) {
	if _, err := NewVerifier(VerifierConfig{Secrets: [][]byte{testSecret}}); err == nil {
		t.Fatal("no audience accepted")
	}
	if _, err := NewVerifier(VerifierConfig{Audience: AudienceCatalog, Secrets: [][]byte{nil, {}}}); err == nil {
		t.Fatal("no secret accepted")
	}
}

func TestReplayCache(t *testing.T) {
	sig := func(b byte) (s [sha256.Size]byte) { s[0], s[1] = 0, b; return s } // all in shard 0
	t.Run("forgets after two periods", func(t *testing.T) {
		c := newReplayCache(time.Minute, 1000)
		if err := c.add(sig(1), testNow); err != nil {
			t.Fatal(err)
		}
		if err := c.add(sig(1), testNow.Add(90*time.Second)); !errors.Is(err, ErrReplayed) {
			t.Fatalf("within the next generation: err = %v", err)
		}
		if err := c.add(sig(1), testNow.Add(5*time.Minute)); err != nil {
			t.Fatalf("long after: %v", err)
		}
	})
	t.Run("full refuses instead of forgetting", func(t *testing.T) {
		c := newReplayCache(time.Minute, 2*replayShards)
		for i := range 2 {
			if err := c.add(sig(byte(i)), testNow); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.add(sig(9), testNow); !errors.Is(err, ErrReplayCacheFull) {
			t.Fatalf("err = %v, want ErrReplayCacheFull", err)
		}
		if err := c.add(sig(0), testNow); !errors.Is(err, ErrReplayed) {
			t.Fatalf("a full cache forgot: err = %v", err)
		}
	})
}

func TestMiddleware(t *testing.T) {
	s := NewSigner(testSecret)
	var seen Principal
	var seenBody string
	h := Middleware(AudienceCatalog, testSecret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = PrincipalFrom(r.Context())
		b, _ := io.ReadAll(r.Body)
		seenBody = string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	p := Principal{Tenant: "acme", Role: RoleTenantMember, Subject: "apikey:1"}
	const body = `{"plan":"small"}`

	serve := func(r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	t.Run("accepts a signed request and passes the body on", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPut, "/api/v1/catalog/x?a=1", strings.NewReader(body))
		s.SignRequest(r, []byte(body), AudienceCatalog, p)
		if w := serve(r); w.Code != http.StatusNoContent {
			t.Fatalf("status = %d %s", w.Code, w.Body)
		}
		if seen != p || seenBody != body {
			t.Fatalf("principal = %+v body = %q", seen, seenBody)
		}
	})
	t.Run("refuses a replay", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/catalog/x", nil)
		s.SignRequest(r, nil, AudienceCatalog, p)
		if w := serve(r); w.Code != http.StatusNoContent {
			t.Fatalf("first: status = %d", w.Code)
		}
		again := httptest.NewRequest(http.MethodGet, "/api/v1/catalog/x", nil)
		again.Header = r.Header.Clone()
		if w := serve(again); w.Code != http.StatusUnauthorized {
			t.Fatalf("replay: status = %d", w.Code)
		}
	})
	t.Run("refuses another body", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPut, "/api/v1/catalog/x", strings.NewReader(`{"plan":"huge"}`))
		s.SignRequest(r, []byte(body), AudienceCatalog, p)
		if w := serve(r); w.Code != http.StatusUnauthorized {
			t.Fatalf("status = %d", w.Code)
		}
	})
	t.Run("refuses unsigned request with problem", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set(HTTPHeader, "acme")
		r.Header.Set(RoleHeader, string(RolePlatformAdmin))
		w := serve(r)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("status = %d", w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("content type = %q", ct)
		}
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("body: %v", err)
		}
		if got["status"] != float64(401) || got["title"] == "" {
			t.Fatalf("body = %v", got)
		}
	})
}

// BenchmarkSignVerify is the per-request cost a service call pays for its
// identity: signing on the caller, verifying (HMAC, replay cache) on the callee.
func BenchmarkSignVerify(b *testing.B) {
	s := NewSigner(testSecret)
	v, err := NewVerifier(VerifierConfig{Audience: AudienceCatalog, Secrets: [][]byte{testSecret}})
	if err != nil {
		b.Fatal(err)
	}
	p := Principal{Tenant: "acme", Role: RoleTenantAdmin, Subject: "apikey:01HXYZ"}
	const target = "/api/v1/catalog/services?limit=20"
	b.Run("sign", func(b *testing.B) {
		h := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			s.Sign(h, http.MethodGet, target, EmptyBodyHash, AudienceCatalog, p)
		}
	})
	b.Run("sign+verify", func(b *testing.B) {
		h := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			s.Sign(h, http.MethodGet, target, EmptyBodyHash, AudienceCatalog, p)
			if _, err := v.Verify(h, http.MethodGet, target, EmptyBodyHash); err != nil {
				b.Fatal(err)
			}
		}
	})
}
