package rules

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func validSample() Rule {
	return Rule{ID: "mem", Name: "MemHigh", Kind: KindSample, Expr: "used_memory / maxmemory > 0.9",
		For: 5 * time.Minute, Labels: map[string]string{"severity": "critical"},
		Annotations: map[string]string{"summary": "{{ $labels.node }} at {{ $value | humanizePercentage }}"}}
}

func validEvent() Rule {
	return Rule{ID: "down", Name: "NodeDown", Kind: KindEvent, On: []string{"health.node.down"},
		ResolveOn: []string{"health.node.up"}, Labels: map[string]string{"severity": "critical"}}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Rule)
		event  bool
		ok     bool
	}{
		{"sample rule", func(*Rule) {}, false, true},
		{"event rule", func(*Rule) {}, true, true},
		{"for 0 is allowed", func(r *Rule) { r.For = 0 }, false, true},
		{"action switchover", func(r *Rule) { r.Action, r.ActionEnabled = ActionSwitchover, true }, false, true},
		{"action rebuild-replica", func(r *Rule) { r.Action = ActionRebuildReplica }, true, true},
		{"action restart-node", func(r *Rule) { r.Action = ActionRestartNode }, true, true},
		{"unknown action", func(r *Rule) { r.Action = "reboot-host" }, false, false},
		{"enabled without action", func(r *Rule) { r.ActionEnabled = true }, false, false},
		{"unknown kind", func(r *Rule) { r.Kind = "metric" }, false, false},
		{"empty id", func(r *Rule) { r.ID = "" }, false, false},
		{"id not a slug", func(r *Rule) { r.ID = "Mem High" }, false, false},
		{"no name", func(r *Rule) { r.Name = " " }, false, false},
		{"negative for", func(r *Rule) { r.For = -time.Second }, false, false},
		{"negative resolve_after", func(r *Rule) { r.ResolveAfter = -time.Second }, true, false},
		{"expr missing", func(r *Rule) { r.Expr = "" }, false, false},
		{"expr with two divisions", func(r *Rule) { r.Expr = "a / b / c > 1" }, false, false},
		{"expr bad operator", func(r *Rule) { r.Expr = "a => 1" }, false, false},
		{"expr threshold not a number", func(r *Rule) { r.Expr = "a > b" }, false, false},
		{"sample with on", func(r *Rule) { r.On = []string{"x"} }, false, false},
		{"event without on", func(r *Rule) { r.On = nil }, true, false},
		{"event with expr", func(r *Rule) { r.Expr = "a > 1" }, true, false},
		{"event with for", func(r *Rule) { r.For = time.Minute }, true, false},
		{"bad engine", func(r *Rule) { r.Engine = "postgres" }, false, false},
		{"bad role", func(r *Rule) { r.Role = "leader" }, false, false},
		{"template does not parse", func(r *Rule) { r.Annotations = map[string]string{"summary": "{{ $labels.x "} }, false, false},
		{"template unknown function", func(r *Rule) { r.Annotations = map[string]string{"summary": "{{ nope 1 }}"} }, false, false},
		{"label sets tenant", func(r *Rule) { r.Labels = map[string]string{"tenant": "other"} }, false, false},
		{"label sets instance", func(r *Rule) { r.Labels = map[string]string{"instance": "i"} }, true, false},
		{"bad label name", func(r *Rule) { r.Labels = map[string]string{"a-b": "x"} }, false, false},
		{"type both fires and resolves", func(r *Rule) { r.ResolveOn = append(r.ResolveOn, r.On[0]) }, true, false},
		{"match empty key", func(r *Rule) { r.Match = map[string]string{"": "x"} }, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validSample()
			if tc.event {
				r = validEvent()
			}
			tc.mutate(&r)
			err := r.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInvalid), "callers answer 400 on ErrInvalid: %v", err)
		})
	}
}

func TestExprEval(t *testing.T) {
	cases := []struct {
		expr    string
		metrics map[string]int64
		value   float64
		ok      bool
		holds   bool
	}{
		{"replication_lag_seconds > 10", map[string]int64{"replication_lag_seconds": 11}, 11, true, true},
		{"replication_lag_seconds > 10", map[string]int64{"replication_lag_seconds": 10}, 10, true, false},
		{"replication_lag_seconds>=10", map[string]int64{"replication_lag_seconds": 10}, 10, true, true},
		{"used_memory/maxmemory > 0.85", map[string]int64{"used_memory": 90, "maxmemory": 100}, 0.9, true, true},
		{"used_memory / maxmemory > 0.85", map[string]int64{"used_memory": 90, "maxmemory": 0}, 0, false, false},
		{"used_memory / maxmemory > 0.85", map[string]int64{"used_memory": 90}, 0, false, false},
		{"replication_running == 0", map[string]int64{"replication_running": 0}, 0, true, true},
		{"replication_running != 0", map[string]int64{"replication_running": 0}, 0, true, false},
		{"x < -1", map[string]int64{"x": -2}, -2, true, true},
		{"x <= 1e3", map[string]int64{"x": 1000}, 1000, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			e, err := parseExpr(tc.expr)
			require.NoError(t, err)
			v, ok := e.eval(tc.metrics)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.InDelta(t, tc.value, v, 1e-9)
			}
			require.Equal(t, tc.holds, ok && e.holds(v))
		})
	}
}

func TestDurationsAreStrings(t *testing.T) {
	r := validSample()
	r.For = 90 * time.Second
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "1m30s", m["for"])
	require.NotContains(t, m, "resolve_after", "zero durations are left out")

	ev := validEvent()
	ev.ResolveAfter = time.Hour
	ev.Tenant = "acme"
	b, err = json.Marshal(ev)
	require.NoError(t, err)
	require.Contains(t, string(b), `"resolve_after":"1h"`)
	var back Rule
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, ev, back)

	require.NoError(t, json.Unmarshal([]byte(`{"id":"x","name":"X","kind":"sample","expr":"a > 1","for":"5m"}`), &back))
	require.Equal(t, 5*time.Minute, back.For)
	require.Error(t, json.Unmarshal([]byte(`{"id":"x","for":"five minutes"}`), &back))

	y, err := yaml.Marshal([]Rule{ev})
	require.NoError(t, err)
	require.Contains(t, string(y), "resolve_after: 1h\n")
	require.NotContains(t, string(y), "tenant", "the tenant is not part of the YAML form")
	var ys []Rule
	require.NoError(t, yaml.Unmarshal(y, &ys))
	ev.Tenant = ""
	require.Equal(t, []Rule{ev}, ys)
}

func TestParseYAMLRefusesDuplicatesAndUnknownFields(t *testing.T) {
	_, err := ParseYAML([]byte("- {id: a, name: A, kind: event, on: [x]}\n- {id: a, name: B, kind: event, on: [y]}\n"))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = ParseYAML([]byte("- {id: a, name: A, kind: event, on: [x], severity: critical}\n"))
	require.Error(t, err, "a misspelt field is an error, not silently dropped")
	_, err = ParseYAML([]byte("- {id: a, name: A, kind: sample, expr: 'a > 1', for: 1x}\n"))
	require.Error(t, err)
}

func TestTemplates(t *testing.T) {
	cases := []struct {
		text  string
		value float64
		want  string
	}{
		{"{{ $labels.node }} of {{ $labels.instance }}", 0, "n-1 of i-1"},
		{"{{ $value }}", 0.5, "0.5"},
		{"{{ $value | humanizePercentage }}", 0.8734, "87.34%"},
		{"{{ $value | humanize }}", 1536000, "1.536M"},
		{"{{ $value | humanize }}", 0.002, "2m"},
		{"{{ $value | humanizeDuration }}", 3725, "1h 2m 5s"},
		{"{{ $value | humanizeDuration }}", 12, "12s"},
		{"{{ $labels.lag_ms | humanize }}", 0, "9.5k"},
		{"{{ $labels.missing }}", 0, ""},
		{`{{ printf "%.1f" $value }}`, 2.25, "2.2"},
		{"{{ toUpper $labels.node }} {{ title \"node down\" }}", 0, "N-1 Node Down"},
	}
	labels := map[string]string{"node": "n-1", "instance": "i-1", "lag_ms": "9500"}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			tmpl, err := parseTemplate("t", tc.text)
			require.NoError(t, err)
			got, err := expand(tmpl, tc.text, labels, tc.value)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	tmpl, err := parseTemplate("t", "{{ $labels.node | humanize }}")
	require.NoError(t, err)
	got, err := expand(tmpl, "{{ $labels.node | humanize }}", labels, 0)
	require.Error(t, err)
	require.Equal(t, "{{ $labels.node | humanize }}", got, "a failing template shows its text")
}
