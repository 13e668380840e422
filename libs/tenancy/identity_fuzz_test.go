package tenancy

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary identity headers to a Verifier: it must never
// panic, must refuse everything it does not accept with ErrUnauthenticated,
// must accept only valid principals, and must never accept a signature it did
// not issue. A valid principal signed by a Signer for this very request must
// verify once and then be refused as a replay.
func FuzzVerify(f *testing.F) {
	secret := []byte("fuzz-secret-0123456789")
	now := time.Unix(1_700_000_000, 0)
	signer := NewSigner(secret)
	signer.now = func() time.Time { return now }

	f.Add("acme", string(RoleTenantAdmin), "apikey:k1", "1700000000", "n-1", "", "GET", "/api/v1/x?y=1", true)
	f.Add("", string(RolePlatformAdmin), "service:healthcheck", "1700000000", "n-2", "", "POST", "/", true)
	f.Add("acme", string(RoleTenantViewer), "a|b|c", "1700000000", "", "00", "GET", "/", false)
	f.Add("ACME!", "root", "x", "soon", "n", "00", "DELETE", "/a", false)
	f.Add("acme", string(RoleTenantMember), "", "-9223372036854775808", "n", "zz", "GET", "", false)
	f.Add("acme", string(RoleTenantMember), "x", "9223372036854775807", "n", "", "PUT", "/%zz", true)
	f.Add("", "", "", "", "", "", "", "", false)

	f.Fuzz(func(t *testing.T, tenant, role, subject, ts, nonce, sig, method, target string, signIt bool) {
		v, err := NewVerifier(VerifierConfig{Audience: AudienceCatalog, Secrets: [][]byte{secret}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		p := Principal{Tenant: ID(tenant), Role: Role(role), Subject: subject}
		h := http.Header{}
		if signIt {
			signer.Sign(h, method, target, EmptyBodyHash, AudienceCatalog, p)
		} else {
			h.Set(HTTPHeader, tenant)
			h.Set(RoleHeader, role)
			h.Set(SubjectHeader, subject)
			h.Set(AuthTimeHeader, ts)
			h.Set(NonceHeader, nonce)
			h.Set(SignatureHeader, sig)
		}

		got, err := v.Verify(h, method, target, EmptyBodyHash)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
			}
			if signIt && p.Validate() == nil {
				t.Fatalf("a valid principal %+v signed for this request was refused: %v", p, err)
			}
			return
		}
		if !signIt {
			t.Fatalf("Verify accepted a signature it never issued: %v", h)
		}
		if verr := got.Validate(); verr != nil {
			t.Fatalf("Verify accepted an invalid principal %+v: %v", got, verr)
		}
		if got != p {
			t.Fatalf("signed %+v, verified as %+v", p, got)
		}
		if _, err := v.Verify(h, method, target, EmptyBodyHash); !errors.Is(err, ErrReplayed) {
			t.Fatalf("a replay of the same signature: %v, want ErrReplayed", err)
		}
	})
}
