package alert

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// String is the operator as written: = != =~ !~.
func (t MatchType) String() string {
	switch t {
	case MatchEqual:
		return "="
	case MatchNotEqual:
		return "!="
	case MatchRegexp:
		return "=~"
	case MatchNotRegexp:
		return "!~"
	default:
		return fmt.Sprintf("MatchType(%d)", int(t))
	}
}

// isRegexp reports whether the operator takes a regular expression.
func (t MatchType) isRegexp() bool { return t == MatchRegexp || t == MatchNotRegexp }

// labelNameRE is Prometheus' (pre-UTF-8) label name syntax, which is what
// Alertmanager 0.25 accepts in matchers.
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// NewMatcher builds a matcher; a bad regexp is an error.
func NewMatcher(t MatchType, name, value string) (*Matcher, error) {
	if t < MatchEqual || t > MatchNotRegexp {
		return nil, fmt.Errorf("matcher %s: unknown operator %d", name, int(t))
	}
	m := &Matcher{Type: t, Name: name, Value: value}
	if t.isRegexp() {
		re, err := compileAnchored(value)
		if err != nil {
			return nil, fmt.Errorf("matcher %s%s%q: %w", name, t, value, err)
		}
		m.re = re
	}
	return m, nil
}

// MustMatcher is NewMatcher for constant matchers (defaults, tests); it
// panics on a bad regexp.
func MustMatcher(t MatchType, name, value string) *Matcher {
	m, err := NewMatcher(t, name, value)
	if err != nil {
		panic(err)
	}
	return m
}

// compileAnchored compiles a regexp anchored at both ends, as Alertmanager
// and PromQL do: "foo" matches only "foo", not "xfoox".
func compileAnchored(v string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + v + ")$")
}

// Matches reports whether v matches. A regexp matcher that was not built
// by NewMatcher (decoded from JSON, say) compiles its regexp on each call
// and matches nothing when it does not compile; Validate reports that.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp, MatchNotRegexp:
		re := m.re
		if re == nil {
			var err error
			if re, err = compileAnchored(m.Value); err != nil {
				return false
			}
		}
		return re.MatchString(v) == (m.Type == MatchRegexp)
	default:
		return false
	}
}

// validate checks the name and, for regexps, that the value compiles.
func (m *Matcher) validate() error {
	if !labelNameRE.MatchString(m.Name) {
		return fmt.Errorf("invalid label name %q", m.Name)
	}
	if m.Type < MatchEqual || m.Type > MatchNotRegexp {
		return fmt.Errorf("matcher %s: unknown operator %d", m.Name, int(m.Type))
	}
	if m.Type.isRegexp() && m.re == nil {
		if _, err := compileAnchored(m.Value); err != nil {
			return fmt.Errorf("matcher %s%s%q: %w", m.Name, m.Type, m.Value, err)
		}
	}
	return nil
}

var openMetricsEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

// String formats as name="value" with the operator (OpenMetrics escaping,
// as Alertmanager prints matchers, so ParseMatchers reads it back).
func (m *Matcher) String() string {
	return m.Name + m.Type.String() + `"` + openMetricsEscaper.Replace(m.Value) + `"`
}

// Matches reports whether every matcher matches ls; a missing label is
// matched as the empty string.
func (ms Matchers) Matches(ls LabelSet) bool {
	for _, m := range ms {
		if !m.Matches(ls[m.Name]) {
			return false
		}
	}
	return true
}

// String formats as {a="b", c=~"d"}.
func (ms Matchers) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(m.String())
	}
	b.WriteByte('}')
	return b.String()
}

// matcherRE splits one matcher into name, operator and raw value; =~ is
// tried before = so that "=~" is not read as "=" and a value "~...".
var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$`)

var opTypes = map[string]MatchType{"=": MatchEqual, "!=": MatchNotEqual, "=~": MatchRegexp, "!~": MatchNotRegexp}

// ParseMatchers parses `{a="b", c=~"d.*"}` or `a="b",c!="x"` (braces
// optional, unquoted values allowed as in amtool). Commas inside quoted
// values do not separate; `\"` escapes a quote; a trailing comma is fine.
// The grammar is Alertmanager 0.25's pkg/labels.ParseMatchers.
func ParseMatchers(s string) (Matchers, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "{")
	s = strings.TrimSuffix(s, "}")
	var (
		ms      Matchers
		quoted  bool
		escaped bool
		start   int
	)
	add := func(tok string) error {
		if strings.TrimSpace(tok) == "" {
			return nil
		}
		m, err := ParseMatcher(tok)
		if err != nil {
			return err
		}
		ms = append(ms, m)
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ',' && !quoted:
			if err := add(s[start:i]); err != nil {
				return nil, err
			}
			start = i + 1
			continue
		case c == '"' && !escaped:
			quoted = !quoted
		case c == '\\':
			escaped = !escaped
			continue
		}
		escaped = false
	}
	if err := add(s[start:]); err != nil {
		return nil, err
	}
	return ms, nil
}

// ParseMatcher parses one matcher, `name="value"`, `name=~value` and so on;
// a quoted value takes the escapes \" \\ and \n.
func ParseMatcher(s string) (*Matcher, error) {
	parts := matcherRE.FindStringSubmatch(s)
	if parts == nil {
		return nil, fmt.Errorf("bad matcher format: %s", s)
	}
	value, err := unquoteValue(parts[3])
	if err != nil {
		return nil, fmt.Errorf("matcher %s: %w", strings.TrimSpace(s), err)
	}
	return NewMatcher(opTypes[parts[2]], parts[1], value)
}

// unquoteValue strips optional surrounding quotes and undoes OpenMetrics
// escapes; an unescaped quote inside the value is an error.
func unquoteValue(raw string) (string, error) {
	quoted := strings.HasPrefix(raw, `"`)
	if quoted {
		raw = raw[1:]
	}
	if !utf8.ValidString(raw) {
		return "", errors.New("value is not valid UTF-8")
	}
	var b strings.Builder
	closed := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if closed {
			return "", errors.New("unescaped double quote in value")
		}
		switch {
		case c == '\\' && i+1 < len(raw):
			i++
			switch raw[i] {
			case 'n':
				b.WriteByte('\n')
			case '"', '\\':
				b.WriteByte(raw[i])
			default: // a spurious escape is a literal backslash
				b.WriteByte('\\')
				b.WriteByte(raw[i])
			}
		case c == '"':
			if !quoted || i != len(raw)-1 {
				return "", errors.New("unescaped double quote in value")
			}
			closed = true
		default:
			b.WriteByte(c)
		}
	}
	if quoted && !closed {
		return "", errors.New("missing closing double quote")
	}
	return b.String(), nil
}
