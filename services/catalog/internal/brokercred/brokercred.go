// Package brokercred is the domain of Open Service Broker credentials: the
// HTTP Basic username/password pairs a platform admin issues to an OSB
// platform (Cloud Foundry, Kubernetes service catalog). Passwords are random,
// shown once and kept only as a SHA-256 hash (they carry 256 bits of entropy,
// so a slow password hash would add latency and no protection). It does not
// speak HTTP or SQL.
package brokercred

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// MaxNameLen bounds a credential's name.
const MaxNameLen = 63

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Credential is an issued broker credential, without its password.
type Credential struct {
	ID           string
	Username     string
	PasswordHash string
	Name         string
	// Tenant the credential acts for; empty for a platform-wide broker.
	Tenant    tenancy.ID
	CreatedBy string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Active reports whether the credential may still authenticate.
func (c Credential) Active() bool { return c.RevokedAt == nil }

// Violation is one invalid field of a credential request.
type Violation struct{ Field, Reason string }

// ValidationError lists the invalid fields.
type ValidationError struct{ Violations []Violation }

// Error joins the violations.
func (e *ValidationError) Error() string {
	var parts []string
	for _, v := range e.Violations {
		parts = append(parts, v.Field+": "+v.Reason)
	}
	return "invalid broker credential: " + strings.Join(parts, "; ")
}

// Issue creates a credential named name for tenant (may be empty) and
// returns it with the one-time plaintext password.
func Issue(name string, tenant string, createdBy string, now time.Time) (Credential, string, error) {
	var vs []Violation
	switch {
	case name == "":
		vs = append(vs, Violation{"name", "is required"})
	case len(name) > MaxNameLen:
		vs = append(vs, Violation{"name", fmt.Sprintf("is %d characters; at most %d are allowed", len(name), MaxNameLen)})
	case !namePattern.MatchString(name):
		vs = append(vs, Violation{"name", "must be lower-case letters, digits and inner hyphens"})
	}
	var tid tenancy.ID
	if tenant != "" {
		id, err := tenancy.Parse(tenant)
		if err != nil {
			vs = append(vs, Violation{"tenant", "is not a valid tenant id"})
		}
		tid = id
	}
	if len(vs) > 0 {
		return Credential{}, "", &ValidationError{Violations: vs}
	}
	id := uuid.New()
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return Credential{}, "", fmt.Errorf("issue broker credential: %w", err)
	}
	password := base64.RawURLEncoding.EncodeToString(secret[:])
	return Credential{
		ID:           id.String(),
		Username:     "osb-" + strings.ReplaceAll(id.String(), "-", "")[:16],
		PasswordHash: Hash(password),
		Name:         name,
		Tenant:       tid,
		CreatedBy:    createdBy,
		CreatedAt:    now.UTC(),
	}, password, nil
}

// Hash returns the stored form of a password.
func Hash(password string) string {
	sum := sha256.Sum256([]byte(password))
	return hex.EncodeToString(sum[:])
}

// ErrBadCredentials is returned by Check for any mismatch; it does not say
// which part was wrong.
var ErrBadCredentials = errors.New("bad broker credentials")

// Check verifies password against c in constant time.
func (c Credential) Check(password string) error {
	if !c.Active() {
		return ErrBadCredentials
	}
	if subtle.ConstantTimeCompare([]byte(Hash(password)), []byte(c.PasswordHash)) != 1 {
		return ErrBadCredentials
	}
	return nil
}
