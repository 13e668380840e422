package cdcbench

import (
	"testing"

	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
)

func TestPositionReached(t *testing.T) {
	for _, c := range []struct {
		cur, target string
		want        bool
	}{
		{"0-1-205", "0-1-205", true},
		{"0-1-206", "0-1-205", true},
		{"0-1-204", "0-1-205", false},
		{"0-2-300", "0-1-205", true}, // after a failover another server writes domain 0
		{"0-1-300", "0-1-205,1-1-3", false},
		{"0-1-300,1-1-3", "0-1-205,1-1-3", true},
		{"", "0-1-1", false},
		{"0-1-1", "", true},
	} {
		cur, err := gtidpos.Parse(c.cur)
		if err != nil {
			t.Fatal(err)
		}
		target, err := gtidpos.Parse(c.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := cur.Covers(target, 0); got != c.want {
			t.Errorf("%q reached %q = %v, want %v", c.cur, c.target, got, c.want)
		}
	}
	if _, err := gtidpos.Parse("0-1"); err == nil {
		t.Error("gtidpos.Parse(0-1) succeeded")
	}
}
