package alert

import (
	"strings"
	"testing"
)

func TestMatcherMatches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		typ   MatchType
		value string
		in    string
		want  bool
	}{
		{"equal", MatchEqual, "critical", "critical", true},
		{"equal other", MatchEqual, "critical", "warning", false},
		{"equal empty matches missing", MatchEqual, "", "", true},
		{"not equal", MatchNotEqual, "critical", "warning", true},
		{"not equal same", MatchNotEqual, "critical", "critical", false},
		{"not equal empty: label present", MatchNotEqual, "", "x", true},
		{"not equal empty: label missing", MatchNotEqual, "", "", false},
		{"regexp alternation", MatchRegexp, "critical|warning", "warning", true},
		{"regexp anchored at the start", MatchRegexp, "crit", "xcrit", false},
		{"regexp anchored at the end", MatchRegexp, "crit", "critical", false},
		{"regexp alternation anchored as a group", MatchRegexp, "a|b", "ab", false},
		{"regexp prefix", MatchRegexp, "crit.*", "critical", true},
		{"regexp matching empty", MatchRegexp, ".*", "", true},
		{"not regexp", MatchNotRegexp, "z.*", "abc", true},
		{"not regexp matching", MatchNotRegexp, "a.*", "abc", false},
	}
	for _, c := range cases {
		m, err := NewMatcher(c.typ, "l", c.value)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := m.Matches(c.in); got != c.want {
			t.Errorf("%s: %s matches %q = %v, want %v", c.name, m, c.in, got, c.want)
		}
	}
}

func TestNewMatcherRejectsBadRegexp(t *testing.T) {
	t.Parallel()
	if _, err := NewMatcher(MatchRegexp, "a", "("); err == nil {
		t.Fatal("bad regexp accepted")
	}
}

func TestMatchersMissingLabelIsEmpty(t *testing.T) {
	t.Parallel()
	ms := Matchers{MustMatcher(MatchEqual, "severity", "critical"), MustMatcher(MatchEqual, "team", "")}
	if !ms.Matches(LabelSet{"severity": "critical"}) {
		t.Error("team=\"\" did not match a missing team label")
	}
	if ms.Matches(LabelSet{"severity": "critical", "team": "db"}) {
		t.Error("team=\"\" matched team=db")
	}
	if !(Matchers{}).Matches(LabelSet{"a": "b"}) {
		t.Error("no matchers should match everything")
	}
}

func TestMatcherDecodedWithoutRegexpStillMatches(t *testing.T) {
	t.Parallel()
	m := &Matcher{Type: MatchRegexp, Name: "a", Value: "x|y"}
	if !m.Matches("y") || m.Matches("xy") {
		t.Fatal("matcher built without NewMatcher does not match like one")
	}
}

func TestParseMatchers(t *testing.T) {
	t.Parallel()
	type want struct {
		typ         MatchType
		name, value string
	}
	cases := []struct {
		name string
		in   string
		want []want
	}{
		{"braces, all operators", `{a="b", c=~"x|y", d!="", e!~"z"}`,
			[]want{{MatchEqual, "a", "b"}, {MatchRegexp, "c", "x|y"}, {MatchNotEqual, "d", ""}, {MatchNotRegexp, "e", "z"}}},
		{"without braces", `a="b",c!="x"`, []want{{MatchEqual, "a", "b"}, {MatchNotEqual, "c", "x"}}},
		{"unquoted values", `foo=bar, dings!=bums`, []want{{MatchEqual, "foo", "bar"}, {MatchNotEqual, "dings", "bums"}}},
		{"spaces around operators", `{ foo = "bar" , baz =~ "q.*" }`, []want{{MatchEqual, "foo", "bar"}, {MatchRegexp, "baz", "q.*"}}},
		{"trailing comma", `{foo="bar", }`, []want{{MatchEqual, "foo", "bar"}}},
		{"escaped quotes and comma inside quotes", `{quote="She said: \"Hi, all\""}`, []want{{MatchEqual, "quote", `She said: "Hi, all"`}}},
		{"escaped backslash and newline", `a="x\\y\nz"`, []want{{MatchEqual, "a", "x\\y\nz"}}},
		{"regexp with comma in quotes", `code=~"5..|4,0"`, []want{{MatchRegexp, "code", "5..|4,0"}}},
		{"empty", ``, nil},
		{"empty braces", `{}`, nil},
	}
	for _, c := range cases {
		ms, err := ParseMatchers(c.in)
		if err != nil {
			t.Errorf("%s: ParseMatchers(%q): %v", c.name, c.in, err)
			continue
		}
		if len(ms) != len(c.want) {
			t.Errorf("%s: got %s, want %d matchers", c.name, ms, len(c.want))
			continue
		}
		for i, w := range c.want {
			if ms[i].Type != w.typ || ms[i].Name != w.name || ms[i].Value != w.value {
				t.Errorf("%s: matcher %d = %s (%q), want %s%s%q", c.name, i, ms[i], ms[i].Value, w.name, w.typ, w.value)
			}
		}
	}
}

func TestParseMatchersErrors(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"no operator":            `{a}`,
		"bad name":               `{1a="b"}`,
		"bad regexp":             `{a=~"("}`,
		"unescaped quote inside": `{a="b"c"}`,
		"unterminated quote":     `{a="b}`,
		"operator without name":  `{="b"}`,
	} {
		if ms, err := ParseMatchers(in); err == nil {
			t.Errorf("%s: ParseMatchers(%q) = %s, want an error", name, in, ms)
		}
	}
}

func TestMatchersStringRoundTrips(t *testing.T) {
	t.Parallel()
	in := Matchers{
		MustMatcher(MatchEqual, "a", `with "quotes", commas and \ backslash`+"\n"),
		MustMatcher(MatchRegexp, "b", "x|y"),
		MustMatcher(MatchNotEqual, "c", ""),
		MustMatcher(MatchNotRegexp, "d", "z.*"),
	}
	s := in.String()
	if !strings.HasPrefix(s, `{a="with \"quotes\"`) || !strings.Contains(s, `, b=~"x|y", c!="", d!~"z.*"}`) {
		t.Errorf("String() = %s", s)
	}
	out, err := ParseMatchers(s)
	if err != nil {
		t.Fatalf("ParseMatchers(%s): %v", s, err)
	}
	if out.String() != s {
		t.Errorf("round trip: %s != %s", out, s)
	}
	for i := range in {
		if out[i].Value != in[i].Value || out[i].Type != in[i].Type {
			t.Errorf("matcher %d: %q %v, want %q %v", i, out[i].Value, out[i].Type, in[i].Value, in[i].Type)
		}
	}
}
