package alert

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FNV-1a 64 as prometheus/common/model hashes label sets; written out so
// the hot push path hashes without allocating a hash.Hash.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
	// separator is model.SeparatorByte, which no valid UTF-8 string holds.
	separator = 0xff
)

func hashAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

func hashAddByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	h *= fnvPrime64
	return h
}

// sortedNames returns the set's names sorted, using buf when it is big
// enough so that small sets sort without allocating.
func (ls LabelSet) sortedNames(buf []string) []string {
	names := buf[:0]
	for n := range ls {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Fingerprint of the label set (see the type's doc).
func (ls LabelSet) Fingerprint() Fingerprint {
	if len(ls) == 0 {
		return Fingerprint(fnvOffset64)
	}
	var buf [16]string
	h := uint64(fnvOffset64)
	for _, n := range ls.sortedNames(buf[:]) {
		h = hashAdd(h, n)
		h = hashAddByte(h, separator)
		h = hashAdd(h, ls[n])
		h = hashAddByte(h, separator)
	}
	return Fingerprint(h)
}

// String formats the label set as Alertmanager does: {a="1", b="2"} sorted.
func (ls LabelSet) String() string {
	var buf [16]string
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range ls.sortedNames(buf[:]) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(ls[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// Clone copies the set.
func (ls LabelSet) Clone() LabelSet {
	if ls == nil {
		return nil
	}
	out := make(LabelSet, len(ls))
	for k, v := range ls {
		out[k] = v
	}
	return out
}

// String is the fingerprint as 16 lower-case hex digits (Alertmanager's).
func (f Fingerprint) String() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	v := uint64(f)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// ParseFingerprint is String's inverse. Like prometheus/common it accepts
// fewer than 16 digits; it refuses anything that is not hex.
func ParseFingerprint(s string) (Fingerprint, error) {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("parse fingerprint %q: %w", s, err)
	}
	return Fingerprint(v), nil
}
