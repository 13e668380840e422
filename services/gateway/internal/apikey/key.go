// Package apikey is the API key domain of the gateway: the key format, how
// secrets are generated and hashed, and the cached Authenticator that turns a
// bearer token into a tenancy.Principal. It holds no SQL or HTTP code; keys
// are read through the small Store interface.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// TokenPrefix starts every generated key, so secret scanners can find leaked keys.
const TokenPrefix = "cnp_"

// BootstrapID is the key id of a bootstrap admin key given verbatim in
// configuration (CANOPY_ADMIN_KEY) rather than in the cnp_ format.
const BootstrapID = "bootstrap"

// MaxNameLen bounds a key's name in characters.
const MaxNameLen = 100

const secretBytes = 32

var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrNotFound is returned by a Store for a key that does not exist.
var ErrNotFound = errors.New("api key not found")

// ErrInvalidKey is returned for a token that is malformed, unknown, revoked
// or does not match; callers must not tell these cases apart to the client.
var ErrInvalidKey = errors.New("invalid api key")

// Key is an API key as stored: everything but the secret, which exists only
// as its SHA-256 hash.
type Key struct {
	ID         string
	Tenant     tenancy.ID // empty for platform-admin keys
	Role       tenancy.Role
	Name       string
	Hash       [sha256.Size]byte
	Bootstrap  bool
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Principal returns who a request authenticated with k is.
func (k Key) Principal() tenancy.Principal {
	return tenancy.Principal{Tenant: k.Tenant, Role: k.Role, Subject: "apikey:" + k.ID}
}

// Matches reports in constant time whether secret hashes to k's hash.
func (k Key) Matches(secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], k.Hash[:]) == 1
}

// New generates a key with a fresh id and secret and returns it with the
// token to give to the user (once: only the hash is kept).
func New(tenant tenancy.ID, role tenancy.Role, name string, now time.Time) (Key, string, error) {
	id := strings.ToLower(ulid.MustNew(ulid.Timestamp(now), rand.Reader).String())
	var raw [secretBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Key{}, "", fmt.Errorf("generate key secret: %w", err)
	}
	secret := strings.ToLower(secretEncoding.EncodeToString(raw[:]))
	k := Key{ID: id, Tenant: tenant, Role: role, Name: name, Hash: sha256.Sum256([]byte(secret)), CreatedAt: now.UTC()}
	return k, TokenPrefix + id + "_" + secret, nil
}

// FromToken builds the stored form of a token chosen by an operator (the
// bootstrap key): a cnp_ token keeps its id, anything else gets BootstrapID.
func FromToken(token string, role tenancy.Role, name string, now time.Time) Key {
	id, secret, ok := ParseToken(token)
	if !ok {
		id, secret = BootstrapID, token
	}
	return Key{ID: id, Role: role, Name: name, Hash: sha256.Sum256([]byte(secret)), CreatedAt: now.UTC()}
}

// ParseToken splits a token into key id and secret. Tokens that are not in
// the cnp_<id>_<secret> form are reported as the bootstrap key's secret.
func ParseToken(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, TokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || len(id) != ulid.EncodedSize || secret == "" || len(secret) > 128 {
		return "", "", false
	}
	return id, secret, true
}

// ValidID reports whether s looks like a key id (cheap check before a lookup).
func ValidID(s string) bool {
	if s == BootstrapID {
		return true
	}
	if len(s) != ulid.EncodedSize {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// ValidateName checks a key's name: 1..MaxNameLen printable characters.
func ValidateName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("must not be empty")
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLen {
		return fmt.Errorf("must be at most %d characters", MaxNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return errors.New("must contain only printable characters")
		}
	}
	return nil
}
