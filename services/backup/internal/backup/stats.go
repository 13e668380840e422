package backup

import "fmt"

// CompareStats lists every difference between what a drill expected and
// measured: table count, keys, and each sampled table's rows, checksum and
// CHECK TABLE verdict. Empty means equal. Tables the measurement has
// beyond the expected sample are not differences: the sample is the
// expectation's.
func CompareStats(expected, measured DataStats) []string {
	var out []string
	if expected.Tables != measured.Tables {
		out = append(out, fmt.Sprintf("tables: %d != %d", expected.Tables, measured.Tables))
	}
	if expected.Keys != measured.Keys {
		out = append(out, fmt.Sprintf("keys: %d != %d", expected.Keys, measured.Keys))
	}
	got := make(map[string]TableStat, len(measured.Sample))
	for _, t := range measured.Sample {
		got[t.Schema+"."+t.Table] = t
	}
	for _, want := range expected.Sample {
		name := want.Schema + "." + want.Table
		m, ok := got[name]
		if !ok {
			out = append(out, name+": missing")
			continue
		}
		if want.Rows != m.Rows {
			out = append(out, fmt.Sprintf("%s: rows %d != %d", name, want.Rows, m.Rows))
		}
		if want.Checksum != m.Checksum {
			out = append(out, fmt.Sprintf("%s: checksum %d != %d", name, want.Checksum, m.Checksum))
		}
		if want.CheckOK != m.CheckOK {
			out = append(out, fmt.Sprintf("%s: check %s != %s", name, verdict(want.CheckOK), verdict(m.CheckOK)))
		}
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}
