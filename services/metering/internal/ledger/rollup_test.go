package ledger

import (
	"strconv"
	"testing"
)

// checkRollups asserts that usage_tenant_hour and usage_tenant_day hold,
// to the last decimal, what their subject tables sum to per (tenant,
// meter, window, plan, region): the usage API reads either and must give
// one answer.
func (h *harness) checkRollups() {
	h.t.Helper()
	for _, p := range [][2]string{{"usage_hour", "usage_tenant_hour"}, {"usage_day", "usage_tenant_day"}} {
		groups := h.count("SELECT COUNT(*) FROM (SELECT 1 FROM " + p[0] + " GROUP BY tenant_id, meter, window_start, plan_id, region) g")
		if n := h.count("SELECT COUNT(*) FROM " + p[1]); n != groups {
			h.t.Errorf("%s has %d rows, %s %d groups", p[1], n, p[0], groups)
		}
		q := "SELECT COUNT(*) FROM (SELECT tenant_id, meter, window_start, plan_id, region, SUM(total) t, SUM(cnt) c, MAX(maximum) m FROM " +
			p[0] + " GROUP BY tenant_id, meter, window_start, plan_id, region) s LEFT JOIN " + p[1] +
			" r USING (tenant_id, meter, window_start, plan_id, region) WHERE r.tenant_id IS NULL OR r.total <> s.t OR r.cnt <> s.c OR NOT (r.maximum <=> s.m)"
		if n := h.count(q); n != 0 {
			h.t.Errorf("%d groups of %s differ from %s", n, p[0], p[1])
		}
		if groups == 0 {
			h.t.Errorf("%s is empty: nothing compared", p[0])
		}
	}
}

func TestFixed9ExactSum(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"0.000000001", "0.000000002"}, "0.000000003"},
		{[]string{"-1.500000000", "0.250000000"}, "-1.250000000"},
		{[]string{"-0.000000000"}, "0.000000000"},
		{[]string{"-0.000000005"}, "-0.000000005"},
		// Beyond int64 billionths (9.2e9): the big.Int path.
		{[]string{"9000000000.000000001", "9000000000.000000001", "-1.000000000"}, "17999999999.000000002"},
		{[]string{"99999999999999999999.999999999", "99999999999999999999.999999999"}, "199999999999999999999.999999998"},
	}
	for _, c := range cases {
		var f fixed9
		for _, s := range c.in {
			f.add([]byte(s))
		}
		if got := string(f.appendTo(nil)); got != c.want {
			t.Errorf("sum of %v = %s, want %s", c.in, got, c.want)
		}
	}
	// Many small values: the same as adding them as integers.
	var f fixed9
	var want int64
	for i := range 1000 {
		v := int64(i*7919) - 3_000_000
		want += v
		f.add([]byte(strconv.FormatFloat(float64(v)/1e9, 'f', 9, 64)))
	}
	if got, w := string(f.appendTo(nil)), strconv.FormatFloat(float64(want)/1e9, 'f', 9, 64); got != w {
		t.Errorf("sum %s, want %s", got, w)
	}
}
