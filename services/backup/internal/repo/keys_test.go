package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/canopy-platform/canopy/libs/secrets"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestWrapKey(t *testing.T) {
	t.Parallel()
	box, err := secrets.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	dk := mustKey(t)
	other := mustKey(t)
	if len(dk) != DataKeySize || bytes.Equal(dk, other) {
		t.Fatalf("data keys %x, %x: want distinct 32-byte keys", dk, other)
	}
	wrapped, err := WrapKey(box, dk, "backup-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(wrapped, dk) {
		t.Fatal("wrapped key contains the data key")
	}
	got, err := UnwrapKey(box, wrapped, "backup-1")
	if err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("unwrap = %x, %v", got, err)
	}
	if _, err := UnwrapKey(box, wrapped, "backup-2"); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("unwrap with another aad: %v, want secrets.ErrDecrypt", err)
	}
	otherBox, _ := secrets.New(bytes.Repeat([]byte{8}, 32))
	if _, err := UnwrapKey(otherBox, wrapped, "backup-1"); err == nil {
		t.Fatal("unwrap with another keyring succeeded")
	}
	if _, err := WrapKey(box, []byte("short"), "backup-1"); err == nil {
		t.Fatal("wrapped a 5-byte data key")
	}
}
