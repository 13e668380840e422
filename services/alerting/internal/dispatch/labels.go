package dispatch

import (
	"slices"
	"strconv"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// appendLabels appends the String form of ls restricted to names (sorted;
// absent ones skipped), byte-for-byte alert.LabelSet.String: Put builds a
// group's key with it without building the group's label set first.
func appendLabels(buf []byte, ls alert.LabelSet, names []string) []byte {
	buf = append(buf, '{')
	first := true
	for _, n := range names {
		v, ok := ls[n]
		if !ok {
			continue
		}
		if !first {
			buf = append(buf, ", "...)
		}
		first = false
		buf = append(buf, n...)
		buf = append(buf, '=')
		buf = strconv.AppendQuote(buf, v)
	}
	return append(buf, '}')
}

func sortedNames(ls alert.LabelSet) []string {
	return sortedNamesInto(make([]string, 0, len(ls)), ls)
}

func sortedNamesInto(names []string, ls alert.LabelSet) []string {
	for n := range ls {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
