package meter

import (
	"strings"
	"testing"
)

func TestValidateMeter(t *testing.T) {
	ok := Meter{Slug: "api_tokens", Name: "API tokens", Unit: "token", Aggregation: Sum, EventType: "api.request", ValueProperty: "usage.tokens", Scale: 1}
	cases := []struct {
		name   string
		edit   func(*Meter)
		fields []string
	}{
		{"valid", func(*Meter) {}, nil},
		{"scale 0 means 1", func(m *Meter) { m.Scale = 0 }, nil},
		{"count needs no property", func(m *Meter) { m.Aggregation, m.ValueProperty = Count, "" }, nil},
		{"missing slug", func(m *Meter) { m.Slug = "" }, []string{"slug"}},
		{"slug upper case", func(m *Meter) { m.Slug = "Tokens" }, []string{"slug"}},
		{"slug one char", func(m *Meter) { m.Slug = "t" }, []string{"slug"}},
		{"slug leading digit", func(m *Meter) { m.Slug = "1tokens" }, []string{"slug"}},
		{"slug too long", func(m *Meter) { m.Slug = "t" + strings.Repeat("x", 63) }, []string{"slug"}},
		{"slug builtin", func(m *Meter) { m.Slug = NodeHours }, []string{"slug"}},
		{"no name unit type", func(m *Meter) { m.Name, m.Unit, m.EventType = "", "", "" }, []string{"name", "unit", "event_type"}},
		{"bad aggregation", func(m *Meter) { m.Aggregation = "MEDIAN" }, []string{"aggregation"}},
		{"sum needs property", func(m *Meter) { m.ValueProperty = "" }, []string{"value_property"}},
		{"unique needs property", func(m *Meter) { m.Aggregation, m.ValueProperty = UniqueCount, "" }, []string{"value_property"}},
		{"empty path segment", func(m *Meter) { m.ValueProperty = "usage..tokens" }, []string{"value_property"}},
		{"negative scale", func(m *Meter) { m.Scale = -1 }, []string{"scale"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := ok
			c.edit(&m)
			err := ValidateMeter(m)
			if c.fields == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			got := fieldErrs(t, err)
			if len(got) != len(c.fields) {
				t.Errorf("fields %v, want %v", got, c.fields)
			}
			for _, f := range c.fields {
				if _, ok := got[f]; !ok {
					t.Errorf("no error for %s: %v", f, got)
				}
			}
		})
	}
}
