package webhook

import (
	"fmt"
	"slices"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// The alert package's methods are stubs on this branch; these private
// copies stand in for them until integration, when they become
// a.Fingerprint().String() and a.Resolved(now).

// FNV-1a 64 constants, as Prometheus' model.hashNew/hashAdd use them.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
	// labelSeparator is Prometheus' model.SeparatorByte.
	labelSeparator = 0xff
)

// fingerprint is Prometheus' labelSetToFingerprint: FNV-1a 64 over the
// sorted label names and values, each followed by the 0xff separator.
func fingerprint(ls alert.LabelSet) uint64 {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	slices.Sort(names)
	h := uint64(fnvOffset64)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= fnvPrime64
		}
		h ^= labelSeparator
		h *= fnvPrime64
	}
	for _, n := range names {
		add(n)
		add(ls[n])
	}
	return h
}

// fingerprintString formats a fingerprint as Alertmanager does: 16
// lower-case hex digits.
func fingerprintString(ls alert.LabelSet) string {
	return fmt.Sprintf("%016x", fingerprint(ls))
}

// resolved reports whether a has ended at now: a resolved state, or an
// EndsAt that is not after now (Alertmanager's types.Alert.ResolvedAt).
func resolved(a *alert.Alert, now time.Time) bool {
	if a.State == alert.StateResolved {
		return true
	}
	return !a.EndsAt.IsZero() && !a.EndsAt.After(now)
}
