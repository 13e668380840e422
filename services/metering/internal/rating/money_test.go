package rating

import (
	"math/big"
	"testing"
	"time"
)

func TestFixedRoundsHalfAwayFromZero(t *testing.T) {
	for _, c := range []struct {
		in     string
		digits int
		want   string
	}{
		{"0.005", 2, "0.01"},
		{"0.015", 2, "0.02"},
		{"0.0049999", 2, "0.00"},
		{"-0.005", 2, "-0.01"},
		{"-0.001", 2, "0.00"},
		{"10.1928", 2, "10.19"},
		{"1/3", 6, "0.333333"},
		{"2/3", 9, "0.666666667"},
		{"123456789012345678901234567890.5", 0, "123456789012345678901234567891"},
	} {
		r, _ := new(big.Rat).SetString(c.in)
		if got := fixed(r, c.digits); got != c.want {
			t.Errorf("fixed(%s, %d) = %s, want %s", c.in, c.digits, got, c.want)
		}
	}
}

func TestTrimmedPrices(t *testing.T) {
	for in, want := range map[string]string{"0.1": "0.10", "0.000125": "0.000125", "3": "3.00", "0.123456789": "0.123456789"} {
		r, _ := new(big.Rat).SetString(in)
		if got := trimmed(r); got != want {
			t.Errorf("trimmed(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestParseDecimalAcceptsPlainDecimalsOnly(t *testing.T) {
	for in, ok := range map[string]bool{"12": true, "0.125": true, "1e3": false, "-1": false, "1/2": false, " 1": false, "": false, ".5": false, "1.": false} {
		if _, got := parseDecimal(in); got != ok {
			t.Errorf("parseDecimal(%q) ok = %v, want %v", in, got, ok)
		}
	}
}

func TestPriceInEffect(t *testing.T) {
	h := func(d, hour int) time.Time { return time.Date(2026, 12, d, hour, 0, 0, 0, time.UTC) }
	v := func(plan string, from time.Time, p int64) *version {
		return &version{plan: plan, from: from, currency: "USD", unit: big.NewRat(p, 1)}
	}
	idx := &priceIndex{byKey: map[planMeter][]*version{
		{"small", "m"}: {v("small", h(5, 0), 1), v("small", h(10, 12), 2)},
		{"*", "m"}:     {v("*", h(1, 0), 7), v("*", h(3, 6), 8), v("*", h(10, 6), 9)},
	}}
	for _, c := range []struct {
		plan string
		at   time.Time
		want int64 // 0: unpriced
	}{
		{"small", h(2, 0), 7},   // before its own price: the "*" one
		{"small", h(5, 0), 1},   // its own from its first hour
		{"small", h(10, 11), 1}, // "*" changes do not matter once it has its own
		{"small", h(10, 12), 2},
		{"large", h(3, 5), 7},
		{"large", h(3, 6), 8},
		{"", h(11, 0), 9},
	} {
		got := idx.at(c.plan, "m", c.at)
		if (got == nil) != (c.want == 0) || got != nil && got.unit.Cmp(big.NewRat(c.want, 1)) != 0 {
			t.Errorf("at(%s, %s) = %v, want %d", c.plan, c.at, got, c.want)
		}
	}
	if idx.at("small", "other", h(20, 0)) != nil {
		t.Error("a meter without prices is priced")
	}
	day := func(d int) (time.Time, time.Time) { return h(d, 0), h(d+1, 0) }
	for _, c := range []struct {
		plan string
		d    int
		want []time.Time
	}{
		{"small", 10, []time.Time{h(10, 12)}}, // the "*" change at 06:00 is hidden by its own price
		{"large", 10, []time.Time{h(10, 6)}},
		{"small", 3, []time.Time{h(3, 6)}}, // before its own price, "*" applies
		{"small", 5, nil},                  // a change at the day's first hour does not split it
		{"small", 6, nil},
	} {
		from, to := day(c.d)
		got := idx.changePoints(c.plan, "m", from, to)
		if len(got) != len(c.want) || len(got) > 0 && !got[0].Equal(c.want[0]) {
			t.Errorf("changePoints(%s, day %d) = %v, want %v", c.plan, c.d, got, c.want)
		}
	}
}
