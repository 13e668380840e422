package idempotency

import (
	"testing"

	"github.com/stretchr/testify/require"
)

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
