package alert

import (
	"math"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	labels := LabelSet{"instance": "i-1", "node": "n-2", "severity": "critical"}
	cases := []struct {
		name  string
		text  string
		value float64
		want  string
	}{
		{"plain text", "no templates here", 0, "no templates here"},
		{"labels", "Node {{ $labels.node }} of {{ $labels.instance }} is down", 0, "Node n-2 of i-1 is down"},
		{"dot labels", "{{ .Labels.severity }}", 0, "critical"},
		{"value", "lag {{ $value }}s", 12.5, "lag 12.5s"},
		{"missing label is empty", "[{{ $labels.nope }}]", 0, "[]"},
		{"printf", `{{ printf "%.2f" $value }}`, 0.876543, "0.88"},
		{"humanize big", "{{ humanize $value }}", 1234567, "1.235M"},
		{"humanize small", "{{ humanize $value }}", 0.012, "12m"},
		{"humanize zero", "{{ humanize $value }}", 0, "0"},
		{"humanize string", `{{ humanize "2048" }}`, 0, "2.048k"},
		{"humanizePercentage", "{{ humanizePercentage $value }}", 0.1234567, "12.35%"},
		{"humanizeDuration minutes", "{{ humanizeDuration $value }}", 899.99, "14m 59s"},
		{"humanizeDuration days", "{{ humanizeDuration $value }}", 90061, "1d 1h 1m 1s"},
		{"humanizeDuration seconds", "{{ humanizeDuration $value }}", 1.5, "1.5s"},
		{"humanizeDuration sub-second", "{{ humanizeDuration $value }}", 0.25, "250ms"},
		{"humanizeDuration negative", "{{ humanizeDuration $value }}", -3700, "-1h 1m 40s"},
		{"humanizeDuration zero", "{{ humanizeDuration $value }}", 0, "0s"},
		{"humanize NaN", "{{ humanize $value }}", math.NaN(), "NaN"},
		{"toUpper", "{{ toUpper $labels.severity }}", 0, "CRITICAL"},
		{"toLower", `{{ toLower "ABC" }}`, 0, "abc"},
		{"title", `{{ title "node down" }}`, 0, "Node Down"},
		{"pipeline", "{{ $labels.severity | toUpper }}", 0, "CRITICAL"},
	}
	for _, c := range cases {
		got, err := Expand(c.text, labels, c.value)
		if err != nil {
			t.Errorf("%s: Expand(%q): %v", c.name, c.text, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: Expand(%q) = %q, want %q", c.name, c.text, got, c.want)
		}
	}
}

func TestExpandErrorsReturnTheText(t *testing.T) {
	t.Parallel()
	for name, text := range map[string]string{
		"parse error":      "{{ $labels.node ",
		"unknown function": "{{ nope $value }}",
		"bad humanize arg": `{{ humanize "abc" }}`,
	} {
		got, err := Expand(text, LabelSet{"node": "n1"}, 1)
		if err == nil {
			t.Errorf("%s: Expand(%q) = %q, want an error", name, text, got)
			continue
		}
		if got != text {
			t.Errorf("%s: Expand returned %q on error, want the text", name, got)
		}
	}
}

func TestExpandNilLabels(t *testing.T) {
	t.Parallel()
	got, err := Expand("x{{ $labels.a }}y", nil, 0)
	if err != nil || got != "xy" {
		t.Fatalf("Expand with nil labels = %q, %v", got, err)
	}
}

func TestExpandCacheIsBounded(t *testing.T) {
	t.Parallel()
	for i := 0; i < maxCachedTemplates+10; i++ {
		if _, err := Expand("{{ $value }}"+strings.Repeat(" ", i), nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	cache.mu.RLock()
	n := len(cache.m)
	cache.mu.RUnlock()
	if n > maxCachedTemplates {
		t.Fatalf("cache holds %d templates, bound %d", n, maxCachedTemplates)
	}
}
