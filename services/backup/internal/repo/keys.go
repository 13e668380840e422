package repo

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/canopy-platform/canopy/libs/secrets"
)

// DataKeySize is the size of a data key (AES-256).
const DataKeySize = 32

// NewDataKey returns a fresh random 32-byte data key.
func NewDataKey() ([]byte, error) {
	k := make([]byte, DataKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("new data key: %w", err)
	}
	return k, nil
}

// WrapKey seals a data key with the keyring; aad binds it to its owner
// (the backup id or segment key).
func WrapKey(box *secrets.Box, dataKey []byte, aad string) ([]byte, error) {
	if box == nil {
		return nil, errors.New("wrap data key: no keyring")
	}
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("wrap data key for %s: %d bytes, want %d", aad, len(dataKey), DataKeySize)
	}
	w, err := box.Seal(dataKey, []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("wrap data key for %s: %w", aad, err)
	}
	return w, nil
}

// UnwrapKey opens a wrapped data key.
func UnwrapKey(box *secrets.Box, wrapped []byte, aad string) ([]byte, error) {
	if box == nil {
		return nil, errors.New("unwrap data key: no keyring")
	}
	k, err := box.Open(wrapped, []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key for %s: %w", aad, err)
	}
	if len(k) != DataKeySize {
		return nil, fmt.Errorf("unwrap data key for %s: %d bytes, want %d", aad, len(k), DataKeySize)
	}
	return k, nil
}
