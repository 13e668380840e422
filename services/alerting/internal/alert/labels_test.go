package alert

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/common/model"
)

// promFingerprint is the reference: prometheus/common's own hash.
func promFingerprint(ls LabelSet) model.Fingerprint {
	m := model.LabelSet{}
	for k, v := range ls {
		m[model.LabelName(k)] = model.LabelValue(v)
	}
	return m.Fingerprint()
}

func TestFingerprintEqualsPrometheus(t *testing.T) {
	t.Parallel()
	cases := map[string]LabelSet{
		"nil":          nil,
		"empty":        {},
		"one":          {"alertname": "NodeDown"},
		"empty value":  {"a": ""},
		"many":         {"alertname": "NodeDown", "instance": "i-1", "node": "n-2", "severity": "critical", "tenant": "t1"},
		"unicode":      {"summary": "räksmörgås ☃", "x": "\n\t\"quoted\""},
		"over 16 keys": bigSet(40),
	}
	for name, ls := range cases {
		if got, want := ls.Fingerprint(), promFingerprint(ls); uint64(got) != uint64(want) {
			t.Errorf("%s: Fingerprint() = %s, prometheus %s", name, got, want)
		}
		if got, want := ls.Fingerprint().String(), promFingerprint(ls).String(); got != want {
			t.Errorf("%s: String() = %s, prometheus %s", name, got, want)
		}
	}
}

func TestFingerprintRandomSetsEqualPrometheus(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz_0123456789ä☃ -"
	word := func(n int) string {
		rs := []rune(alphabet)
		out := make([]rune, n)
		for i := range out {
			out[i] = rs[r.IntN(len(rs))]
		}
		return string(out)
	}
	for i := 0; i < 2000; i++ {
		ls := LabelSet{}
		for j := r.IntN(20); j > 0; j-- {
			ls["l"+word(1+r.IntN(8))] = word(r.IntN(30))
		}
		if got, want := ls.Fingerprint(), promFingerprint(ls); uint64(got) != uint64(want) {
			t.Fatalf("set %v: Fingerprint() = %s, prometheus %s", ls, got, want)
		}
	}
}

func bigSet(n int) LabelSet {
	ls := LabelSet{}
	for i := 0; i < n; i++ {
		ls[string(rune('a'+i%26))+string(rune('a'+i/26))] = string(rune('A' + i%26))
	}
	return ls
}

func TestLabelSetStringEqualsPrometheus(t *testing.T) {
	t.Parallel()
	for name, ls := range map[string]LabelSet{
		"empty":  {},
		"sorted": {"b": "2", "a": "1"},
		"quotes": {"a": `say "hi"` + "\n"},
	} {
		m := model.LabelSet{}
		for k, v := range ls {
			m[model.LabelName(k)] = model.LabelValue(v)
		}
		if got, want := ls.String(), m.String(); got != want {
			t.Errorf("%s: String() = %s, prometheus %s", name, got, want)
		}
	}
}

func TestParseFingerprint(t *testing.T) {
	t.Parallel()
	for _, fp := range []Fingerprint{0, 1, 0xcbf29ce484222325, ^Fingerprint(0)} {
		got, err := ParseFingerprint(fp.String())
		if err != nil || got != fp {
			t.Errorf("ParseFingerprint(%s) = %v, %v", fp, got, err)
		}
		want, _ := model.ParseFingerprint(fp.String())
		if uint64(want) != uint64(fp) {
			t.Errorf("prometheus parses %s as %v", fp, want)
		}
	}
	for _, bad := range []string{"", "xyz", "10000000000000000", "-1"} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) accepted", bad)
		}
	}
}

func TestCloneIsIndependent(t *testing.T) {
	t.Parallel()
	ls := LabelSet{"a": "1"}
	c := ls.Clone()
	c["a"] = "2"
	if ls["a"] != "1" {
		t.Fatalf("Clone shares its map")
	}
	if LabelSet(nil).Clone() != nil {
		t.Fatalf("Clone(nil) is not nil")
	}
}

func BenchmarkFingerprint(b *testing.B) {
	ls := LabelSet{"alertname": "NodeDown", "instance": "i-1", "node": "n-2", "severity": "critical", "tenant": "t1", "role": "replica"}
	b.ReportAllocs()
	for b.Loop() {
		_ = ls.Fingerprint()
	}
}
