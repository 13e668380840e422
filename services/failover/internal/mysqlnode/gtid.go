package mysqlnode

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// GTID is one MariaDB global transaction id: domain-server-sequence.
type GTID struct {
	Domain, Server uint32
	Seq            uint64
}

func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// ParseGTID parses "domain-server-seq".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("gtid %q: want domain-server-seq", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	seq, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("gtid %q: not numbers", s)
	}
	return GTID{Domain: uint32(d), Server: uint32(sv), Seq: seq}, nil
}

// pair is a (domain, server) pair: within one pair sequence numbers grow in
// binlog order (gtid_strict_mode), so a node that has d-s-n has every
// transaction server s logged in domain d up to n.
type pair struct{ domain, server uint32 }

// State is a binlog state (@@gtid_binlog_state): the newest sequence number
// logged per (domain, server) pair.
type State map[pair]uint64

// ParseState parses a comma-separated GTID list ("0-1-5,0-2-9,1-3-2").
func ParseState(s string) (State, error) {
	st := State{}
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		g, err := ParseGTID(f)
		if err != nil {
			return nil, err
		}
		k := pair{g.Domain, g.Server}
		if g.Seq > st[k] {
			st[k] = g.Seq
		}
	}
	return st, nil
}

// Has reports whether the state includes g.
func (s State) Has(g GTID) bool { return s[pair{g.Domain, g.Server}] >= g.Seq }

// Beyond returns, per pair where s goes further than other, s's newest
// GTID of that pair, sorted: the pairs in which s has transactions other
// lacks. Empty when other includes all of s.
func (s State) Beyond(other State) []GTID {
	var out []GTID
	for k, seq := range s {
		if other[k] < seq {
			out = append(out, GTID{Domain: k.domain, Server: k.server, Seq: seq})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		if a.Server != b.Server {
			return a.Server < b.Server
		}
		return a.Seq < b.Seq
	})
	return out
}
