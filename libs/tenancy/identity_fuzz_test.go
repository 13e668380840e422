package tenancy

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary identity headers to Verify: it must never panic,
// must refuse everything it does not accept with ErrUnauthenticated, and must
// accept only valid principals. A principal signed with the right secret must
// come back unchanged when it is valid.
func FuzzVerify(f *testing.F) {
	secret := []byte("s3cret")
	now := time.Unix(1_700_000_000, 0)
	// verify is the one call site, so a change of Verify's signature is one line here.
	verify := func(h http.Header) (Principal, error) { return Verify(h, secret, now, DefaultMaxSkew) }

	good := http.Header{}
	Sign(good, secret, Principal{Tenant: "acme", Role: RoleTenantAdmin, Subject: "apikey:k1"}, now)
	f.Add("acme", string(RoleTenantAdmin), "apikey:k1", good.Get(AuthTimeHeader), good.Get(SignatureHeader), true)
	f.Add("", string(RolePlatformAdmin), "apikey:root", "1700000000", "", true)
	f.Add("acme", string(RoleTenantViewer), "a|b|c", "1700000000", "", true)
	f.Add("ACME!", "root", "x", "soon", "00", false)
	f.Add("acme", string(RoleTenantMember), "", "-9223372036854775808", "zz", false)
	f.Add("acme", string(RoleTenantMember), "x", "9223372036854775807", "", true)
	f.Add("", "", "", "", "", false)

	f.Fuzz(func(t *testing.T, tenant, role, subject, ts, sig string, signIt bool) {
		h := http.Header{}
		h.Set(HTTPHeader, tenant)
		h.Set(RoleHeader, role)
		h.Set(SubjectHeader, subject)
		h.Set(AuthTimeHeader, ts)
		if signIt {
			sig = signature(secret, h.Get(HTTPHeader), h.Get(RoleHeader), h.Get(SubjectHeader), h.Get(AuthTimeHeader))
		}
		h.Set(SignatureHeader, sig)

		p, err := verify(h)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
			}
			return
		}
		if verr := p.Validate(); verr != nil {
			t.Fatalf("Verify accepted an invalid principal %+v: %v", p, verr)
		}
		if !signIt {
			// Only a forged HMAC could get here: the fuzzer cannot know the secret.
			want := signature(secret, string(p.Tenant), string(p.Role), p.Subject, ts)
			if want != sig {
				t.Fatalf("Verify accepted a wrong signature %q", sig)
			}
		}

		// A valid principal signed by Sign round-trips.
		h2 := http.Header{}
		Sign(h2, secret, p, now)
		p2, err := verify(h2)
		if err != nil || p2 != p {
			t.Fatalf("re-signed %+v verified as %+v, %v", p, p2, err)
		}
	})
}
