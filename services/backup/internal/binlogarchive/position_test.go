package binlogarchive

import "testing"

func TestPosition(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		bad            bool
	}{
		{name: "empty", in: "", want: ""},
		{name: "one domain", in: "0-1-42", want: "0-1-42"},
		{name: "domains sorted", in: "2-7-3, 0-1-42", want: "0-1-42,2-7-3"},
		{name: "domain twice", in: "0-1-2,0-2-3", bad: true},
		{name: "not a gtid", in: "0-1", bad: true},
		{name: "negative", in: "0-1--2", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePosition(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("parsePosition(%q) = %v, want an error", tc.in, p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
		})
	}
	p, _ := parsePosition("0-1-42")
	if !p.has(gtid{domain: 0, server: 2, seq: 42}) || p.has(gtid{domain: 0, server: 1, seq: 43}) || p.has(gtid{domain: 1, server: 1, seq: 1}) {
		t.Fatal("has: wrong")
	}
}
