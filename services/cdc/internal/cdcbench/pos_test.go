package cdcbench

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// position is a MariaDB GTID position reduced to what the benchmarks compare:
// the sequence number reached in each replication domain.
type position map[uint32]uint64

// parsePosition reads gtid_binlog_pos / gtid_slave_pos syntax
// ("0-1-205,1-2-7"); "" is the empty position.
func parsePosition(s string) (position, error) {
	p := position{}
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("gtid %q: want domain-server-seq", part)
		}
		d, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("gtid %q: domain: %w", part, err)
		}
		seq, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("gtid %q: seq: %w", part, err)
		}
		if seq > p[uint32(d)] {
			p[uint32(d)] = seq
		}
	}
	return p, nil
}

// reached reports whether p is at or past target in every domain of target.
// Sequence numbers grow per domain whichever server wrote them
// (gtid_strict_mode), so the server id does not matter here.
func (p position) reached(target position) bool {
	for d, seq := range target {
		if p[d] < seq {
			return false
		}
	}
	return true
}

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
		cur, err := parsePosition(c.cur)
		if err != nil {
			t.Fatal(err)
		}
		target, err := parsePosition(c.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := cur.reached(target); got != c.want {
			t.Errorf("%q reached %q = %v, want %v", c.cur, c.target, got, c.want)
		}
	}
	if _, err := parsePosition("0-1"); err == nil {
		t.Error("parsePosition(0-1) succeeded")
	}
}
