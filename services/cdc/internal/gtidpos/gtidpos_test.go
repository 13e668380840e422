package gtidpos

import "testing"

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		name          string
		applied, want string
		own           uint32
		covered       bool
	}{
		{name: "equal", applied: "0-1-10", want: "0-1-10", covered: true},
		{name: "ahead", applied: "0-1-12", want: "0-1-10", covered: true},
		{name: "behind", applied: "0-1-9", want: "0-1-10"},
		{name: "other server same domain counts by sequence", applied: "0-2-10", want: "0-1-10", covered: true},
		{name: "one domain behind", applied: "0-1-10,1-2-5", want: "0-1-10,1-2-6"},
		{name: "domain missing", applied: "0-1-10", want: "0-1-10,1-2-1"},
		{name: "nothing wanted", applied: "", want: "", covered: true},
		{name: "nothing applied", applied: "", want: "0-1-1"},
		{name: "own transaction at the end", applied: "0-1-9", want: "0-77-10", own: 77, covered: true},
		{name: "own transaction without own id", applied: "0-1-9", want: "0-77-10"},
		{name: "another's transaction with own id set", applied: "0-1-9", want: "0-1-10", own: 77},
		{name: "unreadable", applied: "zz", want: "0-1-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CoversText(tc.applied, tc.want, tc.own); got != tc.covered {
				t.Fatalf("covers(%q, %q, %d) = %v, want %v", tc.applied, tc.want, tc.own, got, tc.covered)
			}
		})
	}
}
