// Package tenant is the gateway's tenant domain: a tenant's id, display name,
// rate limit and quota, and the rules for valid values. Persistence and HTTP
// live elsewhere.
package tenant

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// MaxNameLen bounds a tenant's display name in characters.
const MaxNameLen = 200

// MaxRate bounds a tenant's requests per second (and burst).
const MaxRate = 1_000_000

// ErrNotFound is returned for a tenant that does not exist (or is not visible).
var ErrNotFound = errors.New("tenant not found")

// ErrExists is returned when creating a tenant whose id is taken.
var ErrExists = errors.New("tenant already exists")

// RateLimit is a token bucket: RPS tokens per second, at most Burst at once.
// The zero value means "use the gateway's default".
type RateLimit struct {
	RPS   int
	Burst int
}

// IsZero reports whether r is unset.
func (r RateLimit) IsZero() bool { return r == RateLimit{} }

// Validate checks 1 <= RPS, Burst <= MaxRate, or both zero.
func (r RateLimit) Validate() error {
	if r.IsZero() {
		return nil
	}
	if r.RPS < 1 || r.RPS > MaxRate {
		return fmt.Errorf("requests_per_second must be between 1 and %d", MaxRate)
	}
	if r.Burst < 1 || r.Burst > MaxRate {
		return fmt.Errorf("burst must be between 1 and %d", MaxRate)
	}
	return nil
}

// Tenant is one customer of the platform.
type Tenant struct {
	ID        tenancy.ID
	Name      string
	RateLimit RateLimit
	Quota     tenancy.Quota
	CreatedAt time.Time
}

// ValidateName checks a display name: 1..MaxNameLen printable characters.
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
