package svctest

import (
	"strings"
	"testing"
)

func TestSumSeries(t *testing.T) {
	const text = `# HELP x_total Things.
# TYPE x_total counter
x_total{path="/a b",q="{}"} 2
x_total{path="/c"} 3 1700000000000
x_total_created 1.7e+09
x 4
y{a="1"} oops
`
	tests := []struct {
		name, series string
		want         float64
		wantErr      bool
	}{
		{"name sums its label sets", "x_total", 5, false},
		{"labels with spaces and braces", `x_total{path="/a b"`, 2, false},
		{"timestamp ignored", `x_total{path="/c"}`, 3, false},
		{"bare name", "x", 4, false},
		{"comment lines never count", "# HELP", 0, false},
		{"bad value", "y", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sumSeries(strings.NewReader(text), tc.series)
			if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
				t.Fatalf("sumSeries(%s) = %v, %v; want %v (error %v)", tc.series, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
