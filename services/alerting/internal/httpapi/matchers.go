package httpapi

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// This file parses matchers in Alertmanager's (and amtool's) syntax:
// `{a="b", c=~"d.*"}` or `a="b",c!=x`, braces optional, values quoted
// (OpenMetrics escapes) or bare, a trailing comma allowed. It stands in for
// alert.ParseMatchers while the model package is being written; the two
// accept the same syntax, so the integration swaps this for that.

// labelName is Prometheus' classic label name.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// validLabelName reports whether s is a valid label name.
func validLabelName(s string) bool { return labelName.MatchString(s) }

// opText spells each match type as Alertmanager does.
var opText = map[alert.MatchType]string{
	alert.MatchEqual:     "=",
	alert.MatchNotEqual:  "!=",
	alert.MatchRegexp:    "=~",
	alert.MatchNotRegexp: "!~",
}

// parseMatchers parses s; an empty s (or `{}`) gives no matchers.
func parseMatchers(s string) (alert.Matchers, error) {
	p := &matcherParser{in: strings.TrimSpace(s)}
	if strings.HasPrefix(p.in, "{") {
		if !strings.HasSuffix(p.in, "}") {
			return nil, errors.New("missing closing '}'")
		}
		p.in = p.in[1 : len(p.in)-1]
	} else if strings.HasSuffix(p.in, "}") {
		return nil, errors.New("missing opening '{'")
	}
	var out alert.Matchers
	for {
		p.skipSpace()
		if p.done() {
			return out, nil
		}
		m, err := p.matcher()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		p.skipSpace()
		if p.done() {
			return out, nil
		}
		if p.in[p.pos] != ',' {
			return nil, fmt.Errorf("expected ',' after %s at position %d", formatMatcher(m), p.pos)
		}
		p.pos++
	}
}

// parseMatcher parses exactly one matcher.
func parseMatcher(s string) (*alert.Matcher, error) {
	ms, err := parseMatchers(s)
	if err != nil {
		return nil, err
	}
	if len(ms) != 1 {
		return nil, fmt.Errorf("want exactly one matcher, got %d", len(ms))
	}
	return ms[0], nil
}

type matcherParser struct {
	in  string
	pos int
}

func (p *matcherParser) done() bool { return p.pos >= len(p.in) }

func (p *matcherParser) skipSpace() {
	for !p.done() && strings.ContainsRune(" \t\r\n", rune(p.in[p.pos])) {
		p.pos++
	}
}

func (p *matcherParser) matcher() (*alert.Matcher, error) {
	name, err := p.name()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	t, err := p.op(name)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	value, err := p.value()
	if err != nil {
		return nil, fmt.Errorf("value of %s: %w", name, err)
	}
	return newMatcher(t, name, value)
}

func (p *matcherParser) name() (string, error) {
	if !p.done() && p.in[p.pos] == '"' {
		s, err := p.quoted()
		if err != nil {
			return "", fmt.Errorf("label name: %w", err)
		}
		if !validLabelName(s) {
			return "", fmt.Errorf("invalid label name %q", s)
		}
		return s, nil
	}
	start := p.pos
	for !p.done() && !strings.ContainsRune("=!~ \t\r\n,", rune(p.in[p.pos])) {
		p.pos++
	}
	s := p.in[start:p.pos]
	if s == "" {
		return "", fmt.Errorf("expected a label name at position %d", start)
	}
	if !validLabelName(s) {
		return "", fmt.Errorf("invalid label name %q", s)
	}
	return s, nil
}

func (p *matcherParser) op(name string) (alert.MatchType, error) {
	rest := p.in[p.pos:]
	for _, c := range []struct {
		text string
		t    alert.MatchType
	}{{"=~", alert.MatchRegexp}, {"!~", alert.MatchNotRegexp}, {"!=", alert.MatchNotEqual}, {"=", alert.MatchEqual}} {
		if strings.HasPrefix(rest, c.text) {
			p.pos += len(c.text)
			return c.t, nil
		}
	}
	return 0, fmt.Errorf("expected one of = != =~ !~ after %s", name)
}

func (p *matcherParser) value() (string, error) {
	if !p.done() && p.in[p.pos] == '"' {
		return p.quoted()
	}
	start := p.pos
	for !p.done() && p.in[p.pos] != ',' {
		if strings.ContainsRune(`"{}`, rune(p.in[p.pos])) {
			return "", fmt.Errorf("unexpected %q in an unquoted value; quote it", p.in[p.pos])
		}
		p.pos++
	}
	return strings.TrimRight(p.in[start:p.pos], " \t\r\n"), nil
}

// quoted reads a double-quoted string with OpenMetrics escapes (\" \\
// \n); any other backslash is literal, so a regexp's `\.` stays `\.` as
// in Alertmanager.
func (p *matcherParser) quoted() (string, error) {
	var b strings.Builder
	for p.pos++; !p.done(); p.pos++ {
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c == '\\' && p.pos+1 < len(p.in):
			p.pos++
			switch e := p.in[p.pos]; e {
			case 'n':
				b.WriteByte('\n')
			case '"', '\\':
				b.WriteByte(e)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated quoted string")
}

// newMatcher validates a matcher's regexp and builds it. The model's
// NewMatcher compiles the regexp into the matcher; until the integration
// swaps it in, the API only carries the matcher's fields to the store.
func newMatcher(t alert.MatchType, name, value string) (*alert.Matcher, error) {
	if t == alert.MatchRegexp || t == alert.MatchNotRegexp {
		if _, err := compileAnchored(value); err != nil {
			return nil, fmt.Errorf("bad regexp for %s: %w", name, err)
		}
	}
	return &alert.Matcher{Type: t, Name: name, Value: value}, nil
}

// compileAnchored compiles an Alertmanager regexp (anchored at both ends).
func compileAnchored(v string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + v + ")$")
}

// matchesEmpty reports whether m matches a missing label (the empty
// string), as a silence's matchers may not all do.
func matchesEmpty(m *alert.Matcher) bool {
	switch m.Type {
	case alert.MatchEqual:
		return m.Value == ""
	case alert.MatchNotEqual:
		return m.Value != ""
	}
	re, err := compileAnchored(m.Value)
	if err != nil {
		return false
	}
	return re.MatchString("") == (m.Type == alert.MatchRegexp)
}

// openMetricsEscaper escapes a matcher value as Alertmanager prints it.
var openMetricsEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

// formatMatcher spells m as Alertmanager does: name="value", the value
// with OpenMetrics escapes, so the parser reads it back.
func formatMatcher(m *alert.Matcher) string {
	return m.Name + opText[m.Type] + `"` + openMetricsEscaper.Replace(m.Value) + `"`
}
