package alert

import "time"

// Fingerprint of the alert's labels.
func (a *Alert) Fingerprint() Fingerprint { return a.Labels.Fingerprint() }

// Resolved reports whether the alert has ended at now: a rule resolved it,
// or it has an EndsAt and now is not before it (prometheus/common
// model.Alert.ResolvedAt).
func (a *Alert) Resolved(now time.Time) bool {
	if a.State == StateResolved {
		return true // a rule resolved it, with or without an end
	}
	return !a.EndsAt.IsZero() && !a.EndsAt.After(now)
}

// Tenant is the tenant label's value ("" for a platform alert).
func (a *Alert) Tenant() string { return a.Labels[LabelTenant] }

// Merge folds a newer report of the same alert into a (Alertmanager's
// rules: the earliest StartsAt wins unless a was resolved; the later
// UpdatedAt's EndsAt and annotations win) and returns the result.
//
// It is Alertmanager 0.25's provider/mem Put followed by types.Alert.Merge:
// reports whose activity ranges do not overlap are not merged — b replaces
// a, which is how a resolved alert that fires again gets a new StartsAt.
// Otherwise the younger report (by UpdatedAt) is the base, the earliest
// StartsAt is kept, and the EndsAt is the latest explicit one. A zero
// EndsAt is Alertmanager's timeout end (no explicit end, firing until
// updated): it never overrides an explicit end. "Now" for the resolved
// checks is the later UpdatedAt, which is when the newest report arrived.
// Unlike Alertmanager, where a timeout end is now+resolve_timeout, a zero
// end cannot be compared with an explicit one: the younger report's zero
// end stands. The result shares the Labels and Annotations maps of its
// base report.
func (a *Alert) Merge(b *Alert) *Alert {
	now := a.UpdatedAt
	if b.UpdatedAt.After(now) {
		now = b.UpdatedAt
	}
	return a.MergeAt(b, now)
}

// MergeAt is Merge with an explicit now for the resolved checks.
func (a *Alert) MergeAt(b *Alert, now time.Time) *Alert {
	if !overlaps(a, b) {
		res := *b
		res.State = stateAt(&res, now)
		return &res
	}
	old, young := a, b
	if young.UpdatedAt.Before(old.UpdatedAt) {
		old, young = young, old
	}
	res := *young
	// Always the earliest start; a report without a start (a bare
	// resolution) keeps the known one.
	if res.StartsAt.IsZero() || (!old.StartsAt.IsZero() && old.StartsAt.Before(res.StartsAt)) {
		res.StartsAt = old.StartsAt
	}
	if young.Resolved(now) {
		// The latest explicit resolved timestamp wins if both are resolved.
		if old.Resolved(now) && old.EndsAt.After(young.EndsAt) {
			res.EndsAt = old.EndsAt
		}
	} else if endsAfter(old, young) {
		// An explicit (non-timeout) end always rules if it is the latest.
		res.EndsAt = old.EndsAt
	}
	res.State = stateAt(&res, now)
	return &res
}

// endsAfter reports whether x has an explicit end later than y's end,
// a zero end counting as infinitely late.
func endsAfter(x, y *Alert) bool {
	return !x.EndsAt.IsZero() && !y.EndsAt.IsZero() && x.EndsAt.After(y.EndsAt)
}

// overlaps is provider/mem's condition for merging b into the stored a:
// b ends or starts inside a's activity range (a zero EndsAt is open).
func overlaps(a, b *Alert) bool {
	before := func(t, end time.Time) bool { return end.IsZero() || t.Before(end) }
	endsInside := !b.EndsAt.IsZero() && b.EndsAt.After(a.StartsAt) && before(b.EndsAt, a.EndsAt)
	if b.EndsAt.IsZero() && a.EndsAt.IsZero() {
		// Both open-ended: the same episode unless b starts before a.
		endsInside = !b.StartsAt.Before(a.StartsAt)
	}
	startsInside := b.StartsAt.After(a.StartsAt) && before(b.StartsAt, a.EndsAt)
	return endsInside || startsInside
}

// stateAt keeps a pending state but otherwise derives the state from the
// merged EndsAt, so that State never contradicts Resolved.
func stateAt(a *Alert, now time.Time) State {
	switch {
	case a.Resolved(now):
		return StateResolved
	case a.State == StatePending:
		return StatePending
	default:
		return StateFiring
	}
}
