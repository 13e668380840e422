package alert

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidSilence wraps every reason Validate refuses a silence, so the
// API can answer 400 without looking at the text.
var ErrInvalidSilence = errors.New("invalid silence")

// State at now (Alertmanager's: pending before StartsAt, expired after
// EndsAt, active in between, both ends included).
func (s *Silence) State(now time.Time) SilenceState {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.After(s.EndsAt):
		return SilenceExpired
	default:
		return SilenceActive
	}
}

// Mutes reports whether the silence is active at now and matches ls. A
// tenant's silence mutes only that tenant's alerts, whatever its matchers
// say: the implicit tenant="<id>" matcher.
func (s *Silence) Mutes(ls LabelSet, now time.Time) bool {
	if s.State(now) != SilenceActive {
		return false
	}
	if s.Tenant != "" && ls[LabelTenant] != s.Tenant {
		return false
	}
	return s.Matchers.Matches(ls)
}

// Validate checks a silence for creation: at least one matcher, not all
// matching the empty string, EndsAt after StartsAt, tenant matcher rules.
//
// The first three are Alertmanager's (a silence whose every matcher matches
// "" would mute alerts lacking all those labels — nearly everything). The
// tenant rule: a tenant's silence may not name another tenant in a tenant
// matcher, since such a silence could only be an attempt to reach across.
// Errors wrap ErrInvalidSilence.
func (s *Silence) Validate() error {
	if len(s.Matchers) == 0 {
		return fmt.Errorf("%w: at least one matcher required", ErrInvalidSilence)
	}
	allMatchEmpty := true
	for i, m := range s.Matchers {
		if m == nil {
			return fmt.Errorf("%w: matcher %d is empty", ErrInvalidSilence, i)
		}
		if err := m.validate(); err != nil {
			return fmt.Errorf("%w: matcher %d: %w", ErrInvalidSilence, i, err)
		}
		allMatchEmpty = allMatchEmpty && m.Matches("")
		if s.Tenant != "" && m.Name == LabelTenant && !m.Matches(s.Tenant) {
			return fmt.Errorf("%w: matcher %s excludes the silence's own tenant %q", ErrInvalidSilence, m, s.Tenant)
		}
	}
	if allMatchEmpty {
		return fmt.Errorf("%w: at least one matcher must not match the empty string", ErrInvalidSilence)
	}
	if s.StartsAt.IsZero() {
		return fmt.Errorf("%w: starts_at required", ErrInvalidSilence)
	}
	if s.EndsAt.IsZero() {
		return fmt.Errorf("%w: ends_at required", ErrInvalidSilence)
	}
	if !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("%w: ends_at must be after starts_at", ErrInvalidSilence)
	}
	return nil
}
