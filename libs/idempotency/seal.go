package idempotency

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrUnsealed: a stored answer could not be opened with any listed secret.
var ErrUnsealed = errors.New("stored answer cannot be opened")

// sealer seals stored answers (they may hold a freshly issued secret) with
// AES-GCM under a key derived from the current secret and opens those
// sealed under a previous one, so a secret rotation keeps replays working.
type sealer struct {
	aead  cipher.AEAD
	opens []cipher.AEAD
}

func newSealer(label string, secret []byte, previous [][]byte) (*sealer, error) {
	aead, err := newAEAD(label, secret)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	for _, p := range previous {
		if len(p) == 0 {
			continue
		}
		a, err := newAEAD(label, p)
		if err != nil {
			return nil, err
		}
		s.opens = append(s.opens, a)
	}
	return s, nil
}

func newAEAD(label string, secret []byte) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(label))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	return cipher.NewGCM(block)
}

func (s *sealer) seal(plain []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plain, nil), nil
}

func (s *sealer) open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, fmt.Errorf("open: too short: %w", ErrUnsealed)
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], nil)
	for _, a := range s.opens {
		if err == nil {
			break
		}
		plain, err = a.Open(nil, sealed[:n], sealed[n:], nil)
	}
	if err != nil {
		return nil, fmt.Errorf("open: %w: %w", ErrUnsealed, err)
	}
	return plain, nil
}
