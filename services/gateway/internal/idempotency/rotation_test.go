package idempotency

import (
	"testing"

	"github.com/canopy-platform/canopy/libs/obs"
)

type nopStore struct{ Store }

// TestOpenAfterRotation: a response sealed under the previous internal secret
// is still replayed while that secret is listed as previous.
func TestOpenAfterRotation(t *testing.T) {
	oldSecret, newSecret := []byte("previous-secret-0123456789"), []byte("current-secret-0123456789")
	before, err := New(nopStore{}, oldSecret, nil, 0, obs.NopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := before.seal([]byte(`{"id":"acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	during, err := New(nopStore{}, newSecret, [][]byte{oldSecret}, 0, obs.NopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := during.open(sealed); err != nil || string(got) != `{"id":"acme"}` {
		t.Fatalf("open during rotation = %q, %v", got, err)
	}
	after, err := New(nopStore{}, newSecret, nil, 0, obs.NopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.open(sealed); err == nil {
		t.Fatal("opened with a secret no longer listed")
	}
}
