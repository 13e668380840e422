package alert

import "time"

// CONTRACT (helper "alert" implements these in their own files and deletes
// this file). Signatures are fixed; add more as needed.

// Fingerprint of the label set (see the type's doc).
func (ls LabelSet) Fingerprint() Fingerprint { panic("todo") }

// String formats the label set as Alertmanager does: {a="1", b="2"} sorted.
func (ls LabelSet) String() string { panic("todo") }

// Clone copies the set.
func (ls LabelSet) Clone() LabelSet { panic("todo") }

// String is the fingerprint as 16 lower-case hex digits (Alertmanager's).
func (f Fingerprint) String() string { panic("todo") }

// ParseFingerprint is String's inverse.
func ParseFingerprint(s string) (Fingerprint, error) { panic("todo") }

// Fingerprint of the alert's labels.
func (a *Alert) Fingerprint() Fingerprint { panic("todo") }

// Resolved reports whether the alert has ended at now.
func (a *Alert) Resolved(now time.Time) bool { panic("todo") }

// Tenant is the tenant label's value ("" for a platform alert).
func (a *Alert) Tenant() string { panic("todo") }

// Merge folds a newer report of the same alert into a (Alertmanager's
// rules: the earliest StartsAt wins unless a was resolved; the later
// UpdatedAt's EndsAt and annotations win) and returns the result.
func (a *Alert) Merge(b *Alert) *Alert { panic("todo") }

// NewMatcher builds a matcher; a bad regexp is an error.
func NewMatcher(t MatchType, name, value string) (*Matcher, error) { panic("todo") }

// Matches reports whether v matches.
func (m *Matcher) Matches(v string) bool { panic("todo") }

// String formats as name="value" with the operator.
func (m *Matcher) String() string { panic("todo") }

// ParseMatchers parses `{a="b", c=~"d.*"}` or `a="b",c!="x"` (braces
// optional, unquoted values allowed as in amtool).
func ParseMatchers(s string) (Matchers, error) { panic("todo") }

// Matches reports whether every matcher matches ls.
func (ms Matchers) Matches(ls LabelSet) bool { panic("todo") }

// String formats as {a="b", c=~"d"}.
func (ms Matchers) String() string { panic("todo") }

// State at now.
func (s *Silence) State(now time.Time) SilenceState { panic("todo") }

// Mutes reports whether the silence is active at now and matches ls.
func (s *Silence) Mutes(ls LabelSet, now time.Time) bool { panic("todo") }

// Validate checks a silence for creation: at least one matcher, not all
// matching the empty string, EndsAt after StartsAt, tenant matcher rules.
func (s *Silence) Validate() error { panic("todo") }

// Inhibitor answers whether an alert is inhibited given the firing alerts.
type Inhibitor struct{}

// NewInhibitor builds an inhibitor over rules.
func NewInhibitor(rules []InhibitRule) *Inhibitor { panic("todo") }

// Set replaces the source alerts considered (the currently known alerts;
// resolved ones are ignored).
func (in *Inhibitor) Set(alerts []*Alert, now time.Time) { panic("todo") }

// Inhibited reports whether a is muted by a firing source alert (never by
// itself), and by which fingerprint.
func (in *Inhibitor) Inhibited(a *Alert, now time.Time) (Fingerprint, bool) { panic("todo") }

// Expand expands a Prometheus-style annotation template: {{ $labels.x }},
// {{ $value }}, {{ $externalLabels }} is not supported; functions
// humanize, humanizePercentage, humanizeDuration, printf, toUpper,
// toLower, title. On a template error the text is returned with the error.
func Expand(text string, labels LabelSet, value float64) (string, error) { panic("todo") }
