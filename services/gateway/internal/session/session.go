// Package session is the portal's sign-in session domain: a browser
// exchanges an API key for a random session id kept in an HttpOnly cookie,
// and each request with that cookie acts as the key it was made from. Only
// the SHA-256 of the id is stored, so a copy of the table signs nobody in.
// A session carries a CSRF token the page must echo on mutating calls. It
// holds no HTTP or SQL code; sessions are kept through the small Store.
package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// CookieName is the session cookie's name.
const CookieName = "canopy_session"

// CSRFHeader is the header a cookie-authenticated mutating request must
// carry, equal to its session's CSRF token.
const CSRFHeader = "X-CSRF-Token"

// idBytes is the entropy of a session id and of a CSRF token: 256 bits.
const idBytes = 32

// maxIDLen bounds what is accepted as a cookie value before hashing.
const maxIDLen = 64

// ErrNotFound is returned by a Store for an unknown session.
var ErrNotFound = errors.New("session not found")

// Session is a session as stored: the hash of its id, never the id.
type Session struct {
	// IDHash is the SHA-256 of the id given to the browser.
	IDHash [sha256.Size]byte
	// KeyID is the API key the session acts as.
	KeyID string
	// CSRFToken is echoed by the page in CSRFHeader on mutating calls.
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Store keeps sessions.
type Store interface {
	// CreateSession inserts s.
	CreateSession(ctx context.Context, s Session) error
	// SessionByHash returns the session with the id hash or ErrNotFound.
	SessionByHash(ctx context.Context, hash [sha256.Size]byte) (Session, error)
	// DeleteSession removes the session with the id hash (none is no error).
	DeleteSession(ctx context.Context, hash [sha256.Size]byte) error
	// DeleteExpiredSessions removes sessions that expired before now and
	// returns how many; running it twice, or on two replicas, is harmless.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)
}

// New makes a session for key keyID living ttl from now, and returns it
// with the id to hand to the browser (once: only its hash is kept).
func New(keyID string, now time.Time, ttl time.Duration) (Session, string, error) {
	if keyID == "" || ttl <= 0 {
		return Session{}, "", errors.New("new session: key id and a positive ttl are required")
	}
	id, err := random()
	if err != nil {
		return Session{}, "", fmt.Errorf("new session id: %w", err)
	}
	csrf, err := random()
	if err != nil {
		return Session{}, "", fmt.Errorf("new session csrf token: %w", err)
	}
	now = now.UTC().Truncate(time.Microsecond) // what DATETIME(6) keeps
	return Session{IDHash: Hash(id), KeyID: keyID, CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(ttl)}, id, nil
}

func random() (string, error) {
	var b [idBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Hash is the stored form of a session id.
func Hash(id string) [sha256.Size]byte { return sha256.Sum256([]byte(id)) }

// ValidID reports whether a cookie value can be a session id at all, a
// cheap check before a lookup.
func ValidID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// Expired reports whether s is no longer valid at now.
func (s Session) Expired(now time.Time) bool { return !now.Before(s.ExpiresAt) }

// CheckCSRF reports in constant time whether token is s's CSRF token.
func (s Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRFToken)) == 1
}

// Mutating reports whether an HTTP method changes state and so needs the
// CSRF token under cookie authentication.
func Mutating(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS":
		return false
	}
	return true
}
