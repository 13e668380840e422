// Package secrets seals credentials at rest with AES-256-GCM under a keyring:
// one current key, which seals, and zero or more previous keys, which only
// open, so the key can be rotated without downtime. Every sealed value names
// the key that sealed it; values from before key ids existed (format 1) are
// opened by trying each configured key. The keys come from configuration
// (CANOPY_SECRETS_KEY, CANOPY_SECRETS_KEYS_PREVIOUS, base64 of 32 bytes); for
// development a key is generated once into <state dir>/secrets.key. It does
// not rewrite stored values itself (the repository re-seals them) and does
// not talk to a KMS.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// Formats of sealed values, told apart by their first byte.
const (
	// formatLegacy is 0x01 | nonce | ciphertext: sealed before key ids
	// existed, by one of the configured keys (which one is not recorded).
	formatLegacy byte = 1
	// formatKeyed is 0x02 | key id | nonce | ciphertext.
	formatKeyed byte = 2
)

// KeyIDSize is the length of a key id in sealed values.
const KeyIDSize = 8

// ErrDecrypt is returned for a value that does not open with the key that
// should open it (wrong key, wrong row or corrupt value).
var ErrDecrypt = errors.New("secrets: cannot decrypt (wrong key or corrupt value)")

// ErrUnknownKey is returned for a value sealed with a key that is neither the
// current nor a previous key (see UnknownKeyError).
var ErrUnknownKey = errors.New("secrets: value sealed with a key that is not configured")

// KeyID names a key inside sealed values. It is derived from the key, so
// keys need no names in configuration and a key always has the same id.
type KeyID [KeyIDSize]byte

// String is the id in hex, as logged.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// IDOf returns the key id of a key: the first bytes of a SHA-256 over a
// domain label and the key. Published ids reveal nothing usable about a
// random 256-bit key.
func IDOf(key []byte) KeyID {
	h := sha256.New()
	h.Write([]byte("canopy secrets key id\x00"))
	h.Write(key)
	var id KeyID
	copy(id[:], h.Sum(nil))
	return id
}

// UnknownKeyError is returned when a value's key id is not in the keyring,
// typically because a previous key was removed before every value was
// re-sealed. It is both ErrUnknownKey and ErrDecrypt.
type UnknownKeyError struct {
	ID KeyID
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("secrets: value sealed with key id %s, which is neither the current nor a previous key (was it removed before re-sealing finished?)", e.ID)
}

// Unwrap returns ErrUnknownKey and ErrDecrypt, so callers that only ask
// whether a value opened keep working.
func (e *UnknownKeyError) Unwrap() []error { return []error{ErrUnknownKey, ErrDecrypt} }

// Box seals with the current key and opens with any key of its keyring.
type Box struct {
	current KeyID
	keys    map[KeyID]cipher.AEAD
	// order is the current key first, then the previous ones as given: the
	// order in which legacy values are tried.
	order []cipher.AEAD
}

// New returns a Box with a single 32-byte key.
func New(key []byte) (*Box, error) { return NewKeyring(key) }

// NewKeyring returns a Box that seals with current and opens values sealed
// with current or any of previous. A previous key equal to current is
// ignored.
func NewKeyring(current []byte, previous ...[]byte) (*Box, error) {
	b := &Box{current: IDOf(current), keys: map[KeyID]cipher.AEAD{}}
	for i, key := range append([][]byte{current}, previous...) {
		aead, err := newAEAD(key)
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("secrets: current key: %w", err)
			}
			return nil, fmt.Errorf("secrets: previous key %d: %w", i, err)
		}
		id := IDOf(key)
		if _, dup := b.keys[id]; dup {
			continue
		}
		b.keys[id] = aead
		b.order = append(b.order, aead)
	}
	return b, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Current is the id of the key that seals.
func (b *Box) Current() KeyID { return b.current }

// CurrentPrefix is the prefix every value sealed with the current key starts
// with, so a store can find the values that need re-sealing without opening
// them.
func (b *Box) CurrentPrefix() []byte { return append([]byte{formatKeyed}, b.current[:]...) }

// IsCurrent reports whether sealed was sealed with the current key.
func (b *Box) IsCurrent(sealed []byte) bool { return bytes.HasPrefix(sealed, b.CurrentPrefix()) }

// Seal encrypts plaintext with the current key; aad (e.g. the owning row's
// id) binds the value to its place, so a sealed value copied to another row
// does not open.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	aead := b.keys[b.current]
	ns := aead.NonceSize()
	out := make([]byte, 1+KeyIDSize+ns, 1+KeyIDSize+ns+len(plaintext)+aead.Overhead())
	out[0] = formatKeyed
	copy(out[1:], b.current[:])
	nonce := out[1+KeyIDSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a value made by Seal with the same aad, with whichever key
// of the keyring sealed it. A value naming a key that is not in the keyring
// is an *UnknownKeyError; anything else that does not open is ErrDecrypt.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, ErrDecrypt
	}
	switch sealed[0] {
	case formatKeyed:
		if len(sealed) < 1+KeyIDSize {
			return nil, ErrDecrypt
		}
		var id KeyID
		copy(id[:], sealed[1:])
		aead, ok := b.keys[id]
		if !ok {
			return nil, &UnknownKeyError{ID: id}
		}
		return open(aead, sealed[1+KeyIDSize:], aad)
	case formatLegacy:
		// GCM authenticates, so only the right key opens the value.
		for _, aead := range b.order {
			if pt, err := open(aead, sealed[1:], aad); err == nil {
				return pt, nil
			}
		}
		return nil, ErrDecrypt
	default:
		return nil, ErrDecrypt
	}
}

func open(aead cipher.AEAD, body, aad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(body) < ns+aead.Overhead() {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, body[:ns], body[ns:], aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Reseal returns sealed re-sealed with the current key, and whether it
// changed: a value already under the current key is returned as is.
func (b *Box) Reseal(sealed, aad []byte) ([]byte, bool, error) {
	if b.IsCurrent(sealed) {
		return sealed, false, nil
	}
	pt, err := b.Open(sealed, aad)
	if err != nil {
		return nil, false, err
	}
	out, err := b.Seal(pt, aad)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// ParseKeys decodes a list of keys (see ParseKey), skipping empty entries
// (an empty environment variable).
func ParseKeys(keys []string) ([][]byte, error) {
	out := make([][]byte, 0, len(keys))
	for i, s := range keys {
		if strings.TrimSpace(s) == "" {
			continue
		}
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		out = append(out, k)
	}
	return out, nil
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("secrets: key decodes to %d bytes, want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("secrets: key is not base64")
}

// LoadOrCreateKey returns the configured key when configured is non-empty;
// otherwise it reads <dir>/secrets.key, creating it with a random key (mode
// 0600) on first use. The generated key is for development only.
func LoadOrCreateKey(configured, dir string) ([]byte, error) {
	if configured != "" {
		return ParseKey(configured)
	}
	path := filepath.Join(dir, "secrets.key")
	if b, err := os.ReadFile(path); err == nil {
		return ParseKey(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("secrets: read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: make %s: %w", dir, err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) { // another process won the race
		b, rerr := os.ReadFile(path)
		if rerr != nil {
			return nil, fmt.Errorf("secrets: read %s: %w", path, rerr)
		}
		return ParseKey(string(b))
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: create %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return nil, fmt.Errorf("secrets: write %s: %w", path, err)
	}
	return key, nil
}

// Password returns a random password of n characters from an alphabet that
// is safe in SQL literals, Redis ACL rules, URIs and configuration files.
func Password(n int) string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
