package dispatch

// This file holds private copies of helpers the alert package will export
// (LabelSet.Fingerprint, LabelSet.String, Matcher.Matches/String,
// Alert.Resolved, Alert.Merge). They exist only because alert was still a
// stub when dispatch was written; at integration each one is replaced by
// the alert method named in its comment and this file is deleted. Nothing
// outside this file may depend on how they are written.

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// FNV-1a 64 constants and Prometheus' label separator.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
	labelSep    = 0xff
)

// fingerprintOf is alert.LabelSet.Fingerprint: FNV-1a 64 over the sorted
// names and values, each followed by 0xff (Prometheus' fingerprint).
func fingerprintOf(ls alert.LabelSet) alert.Fingerprint {
	var arr [16]string // most label sets fit: no allocation
	names := sortedNamesInto(arr[:0], ls)
	h := uint64(fnvOffset64)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= fnvPrime64
		}
		h ^= labelSep
		h *= fnvPrime64
	}
	for _, n := range names {
		add(n)
		add(ls[n])
	}
	return alert.Fingerprint(h)
}

// labelSetString is alert.LabelSet.String: {a="1", b="2"}, names sorted,
// values Go-quoted (Prometheus' model.LabelSet.String).
func labelSetString(ls alert.LabelSet) string {
	return string(appendLabels(nil, ls, sortedNames(ls)))
}

// appendLabels appends the String form of ls restricted to names (sorted;
// absent ones skipped). It lets Put build a group's key without building
// its label set first; at integration it stays, byte-for-byte
// alert.LabelSet.String, unless alert grows an equivalent.
func appendLabels(buf []byte, ls alert.LabelSet, names []string) []byte {
	buf = append(buf, '{')
	first := true
	for _, n := range names {
		v, ok := ls[n]
		if !ok {
			continue
		}
		if !first {
			buf = append(buf, ", "...)
		}
		first = false
		buf = append(buf, n...)
		buf = append(buf, '=')
		buf = strconv.AppendQuote(buf, v)
	}
	return append(buf, '}')
}

func sortedNames(ls alert.LabelSet) []string {
	return sortedNamesInto(make([]string, 0, len(ls)), ls)
}

func sortedNamesInto(names []string, ls alert.LabelSet) []string {
	for n := range ls {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// matcher is an alert.Matcher with its regexp compiled here, because the
// compiled form inside alert.Matcher is unexported (alert.Matcher.Matches).
type matcher struct {
	m  alert.Matcher
	re *regexp.Regexp // nil for = and !=, or when the regexp is invalid
}

// compileMatcher anchors a regexp at both ends as Alertmanager does. An
// invalid regexp never matches (routes are validated before they get here).
func compileMatcher(m *alert.Matcher) matcher {
	c := matcher{m: *m}
	if m.Type == alert.MatchRegexp || m.Type == alert.MatchNotRegexp {
		c.re, _ = regexp.Compile("^(?:" + m.Value + ")$")
	}
	return c
}

// matches is alert.Matcher.Matches; a missing label is the empty string.
func (c matcher) matches(v string) bool {
	switch c.m.Type {
	case alert.MatchEqual:
		return v == c.m.Value
	case alert.MatchNotEqual:
		return v != c.m.Value
	case alert.MatchRegexp:
		return c.re != nil && c.re.MatchString(v)
	case alert.MatchNotRegexp:
		return c.re != nil && !c.re.MatchString(v)
	}
	return false
}

// matchersString is alert.Matchers.String: {a="b", c=~"d"}, values escaped
// as OpenMetrics (backslash, newline, double quote).
func matchersString(ms []matcher) string {
	esc := strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	ops := map[alert.MatchType]string{
		alert.MatchEqual: "=", alert.MatchNotEqual: "!=",
		alert.MatchRegexp: "=~", alert.MatchNotRegexp: "!~",
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.m.Name + ops[m.m.Type] + `"` + esc.Replace(m.m.Value) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

// resolvedAt is alert.Alert.Resolved: an alert has ended once its EndsAt
// is not after now; a zero EndsAt fires with no known end.
func resolvedAt(a *alert.Alert, now time.Time) bool {
	if a.EndsAt.IsZero() {
		return a.State == alert.StateResolved
	}
	return !a.EndsAt.After(now)
}

// mergeAlert is alert.Alert.Merge (Alertmanager's types.Alert.Merge): the
// report updated later wins, with the earliest StartsAt, except that a
// newer report of an alert that has already ended starts a new incarnation.
func mergeAlert(old, nw *alert.Alert, now time.Time) *alert.Alert {
	if resolvedAt(old, now) && !nw.UpdatedAt.Before(old.UpdatedAt) && !nw.StartsAt.Before(old.EndsAt) {
		return nw
	}
	older, younger := old, nw
	if nw.UpdatedAt.Before(old.UpdatedAt) {
		older, younger = nw, old
	}
	res := *younger
	if !older.StartsAt.IsZero() && older.StartsAt.Before(res.StartsAt) {
		res.StartsAt = older.StartsAt
	}
	return &res
}
