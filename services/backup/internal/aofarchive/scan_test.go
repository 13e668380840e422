package aofarchive

import (
	"errors"
	"testing"
)

func TestScan(t *testing.T) {
	set := "*3\r\n$3\r\nset\r\n$1\r\na\r\n$1\r\n1\r\n"
	for _, tc := range []struct {
		name, in     string
		n            int
		first, last  int64
		startsWithTS bool
	}{
		{"empty", "", 0, 0, 0, false},
		{"one command", set, len(set), 0, 0, false},
		{"annotated", "#TS:100\r\n" + set + "#TS:102\r\n" + set, 2*len(set) + 18, 100, 102, true},
		{"annotation later", set + "#TS:7\r\n" + set, 2*len(set) + 7, 7, 7, false},
		{"command cut in its header", set + "*3\r\n$3", len(set), 0, 0, false},
		{"command cut in a value", set + "*1\r\n$5\r\nab", len(set), 0, 0, false},
		{"annotation cut", set + "#TS:1", len(set), 0, 0, false},
		{"binary value with CRLF and #", "*1\r\n$4\r\n\r\n#T\r\n", 14, 0, 0, false},
	} {
		got, err := scan([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.n != tc.n || got.first != tc.first || got.last != tc.last || got.startsWithTS != tc.startsWithTS {
			t.Errorf("%s: got %+v, want n=%d first=%d last=%d starts=%v", tc.name, got, tc.n, tc.first, tc.last, tc.startsWithTS)
		}
	}
	for _, bad := range []string{"+OK\r\n", "*1\r\n:5\r\n", "#TS:x\r\n", "*1\r\n$1\r\nab\r\n"} {
		if _, err := scan([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("scan(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}
