package httpapi

import (
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// TestParseMatchers: Alertmanager's and amtool's spellings.
func TestParseMatchers(t *testing.T) {
	tests := []struct {
		in   string
		want []string // formatted
	}{
		{``, nil},
		{`{}`, nil},
		{`a="b"`, []string{`a="b"`}},
		{`{a="b", c=~"d.*"}`, []string{`a="b"`, `c=~"d.*"`}},
		{`a=b,c!=x`, []string{`a="b"`, `c!="x"`}},
		{` severity =~ critical|warning , `, []string{`severity=~"critical|warning"`}},
		{`{job!~"mysql|redis",}`, []string{`job!~"mysql|redis"`}},
		{`a="with \"quote\", and comma"`, []string{`a="with \"quote\", and comma"`}},
		{`a=""`, []string{`a=""`}},
		{`"a"="b"`, []string{`a="b"`}},
		{`instance=~"10\.0\..*"`, []string{`instance=~"10\\.0\\..*"`}},
		{`a="line\nbreak \\ back"`, []string{`a="line\nbreak \\ back"`}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ms, err := parseMatchers(tc.in)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, formatMatcher(m))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("= %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("= %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestParseMatchersErrors: what Alertmanager refuses.
func TestParseMatchersErrors(t *testing.T) {
	for _, in := range []string{`{a="b"`, `a="b"}`, `a`, `a~b`, `1a="b"`, `a=~"("`, `a="b" c="d"`, `a="unterminated`, `a=b"c`, `=b`} {
		t.Run(in, func(t *testing.T) {
			if ms, err := parseMatchers(in); err == nil {
				t.Fatalf("parsed as %v, want an error", ms)
			}
		})
	}
}

// TestMatchesEmpty: the matchers a silence may not consist of only.
func TestMatchesEmpty(t *testing.T) {
	tests := []struct {
		t     alert.MatchType
		value string
		want  bool
	}{
		{alert.MatchEqual, "", true},
		{alert.MatchEqual, "x", false},
		{alert.MatchNotEqual, "x", true},
		{alert.MatchNotEqual, "", false},
		{alert.MatchRegexp, ".*", true},
		{alert.MatchRegexp, ".+", false},
		{alert.MatchNotRegexp, ".+", true},
		{alert.MatchNotRegexp, ".*", false},
	}
	for _, tc := range tests {
		if got := matchesEmpty(&alert.Matcher{Type: tc.t, Name: "a", Value: tc.value}); got != tc.want {
			t.Errorf("%s%s%q matches empty = %v, want %v", "a", opText[tc.t], tc.value, got, tc.want)
		}
	}
}

// TestFormatDuration: Prometheus' spelling.
func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second: "30s", 5 * time.Minute: "5m", 4 * time.Hour: "4h", 90 * time.Minute: "1h30m",
		0: "0s", 1500 * time.Millisecond: "1.5s", time.Hour + time.Second: "1h0m1s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestFingerprintSpelling: 16 hex digits both ways.
func TestFingerprintSpelling(t *testing.T) {
	fp := alert.Fingerprint(0xdeadbeef)
	s := fingerprintString(fp)
	if s != "00000000deadbeef" {
		t.Fatalf("= %q", s)
	}
	back, err := parseFingerprint(s)
	if err != nil || back != fp {
		t.Fatalf("parse = %v %v", back, err)
	}
	for _, bad := range []string{"", "deadbeef", "zzzzzzzzzzzzzzzz", "00000000deadbeef0"} {
		if _, err := parseFingerprint(bad); err == nil {
			t.Errorf("parseFingerprint(%q) succeeded", bad)
		}
	}
}

// TestMatcherRoundTrip: what formatMatcher writes parses back to the same
// matcher, and a regexp's escapes reach the regexp unchanged.
func TestMatcherRoundTrip(t *testing.T) {
	for _, in := range []string{`instance=~"10\.0\..*"`, `a="q\"uote"`, `a!="back\\slash"`, `a!~"x\ny"`} {
		m, err := parseMatcher(in)
		if err != nil {
			t.Fatalf("parse %s: %v", in, err)
		}
		back, err := parseMatcher(formatMatcher(m))
		if err != nil || *back != *m {
			t.Fatalf("%s -> %s -> %+v %v, want %+v", in, formatMatcher(m), back, err, m)
		}
	}
	m, _ := parseMatcher(`instance=~"10\.0\..*"`)
	re, _ := compileAnchored(m.Value)
	if !re.MatchString("10.0.3.1") || re.MatchString("10x0y3") {
		t.Fatalf("regexp %q does not treat \\. as a literal dot", m.Value)
	}
}
