package apikey

import (
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// FuzzParseToken feeds arbitrary bearer tokens to the key parsing the
// authenticator does first: no panic; an accepted token splits exactly into
// prefix, a valid id and a bounded secret; FromToken always yields a key whose
// hash matches the secret part.
func FuzzParseToken(f *testing.F) {
	_, token, err := New("acme", tenancy.RoleTenantAdmin, "ci", time.Unix(1_700_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{token, "cnp_", "cnp__", "cnp_01hzzzzzzzzzzzzzzzzzzzzzzz_", "bootstrap-secret",
		"cnp_01HZZZZZZZZZZZZZZZZZZZZZZZ_x", "cnp_01hzzzzzzzzzzzzzzzzzzzzzzz_" + string(make([]byte, 129)), "cnp_a_b_c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, secret, ok := ParseToken(token)
		if ok {
			if TokenPrefix+id+"_"+secret != token || secret == "" || len(secret) > 128 || len(id) != 26 {
				t.Fatalf("ParseToken(%q) = %q, %q", token, id, secret)
			}
		} else if id != "" || secret != "" {
			t.Fatalf("refused token %q still gave %q, %q", token, id, secret)
		}
		k := FromToken(token, tenancy.RoleTenantViewer, "k", time.Unix(0, 0))
		want := token
		if ok {
			want = secret
		} else if k.ID != BootstrapID {
			t.Fatalf("non-cnp token got id %q", k.ID)
		}
		if !k.Matches(want) {
			t.Fatalf("key from %q does not match its own secret", token)
		}
		_ = ValidID(id)
	})
}
