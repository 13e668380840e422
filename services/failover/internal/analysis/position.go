package analysis

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// GTIDSet is a parsed MariaDB GTID position: per replication domain, the
// highest sequence number applied ("0-1-42,1-2-7" → {0: 42, 1: 7}). The
// server id is kept for reporting only: MariaDB orders a domain's
// transactions by sequence number alone.
type GTIDSet map[uint32]GTID

// GTID is one domain's entry of a GTID position.
type GTID struct {
	Domain uint32
	Server uint32
	Seq    uint64
}

// String renders the entry the way MariaDB prints it.
func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq) }

// ParseGTIDSet parses MariaDB's gtid_current_pos / gtid_slave_pos text.
// An empty string is the empty set (a node that never wrote).
func ParseGTIDSet(s string) (GTIDSet, error) {
	set := GTIDSet{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("parse gtid %q: want domain-server-seq", part)
		}
		d, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parse gtid %q domain: %w", part, err)
		}
		srv, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parse gtid %q server: %w", part, err)
		}
		seq, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse gtid %q seq: %w", part, err)
		}
		if prev, ok := set[uint32(d)]; ok && prev.Seq >= seq {
			continue
		}
		set[uint32(d)] = GTID{Domain: uint32(d), Server: uint32(srv), Seq: seq}
	}
	return set, nil
}

// Contains reports whether s has applied everything o has, in every domain.
func (s GTIDSet) Contains(o GTIDSet) bool {
	for d, g := range o {
		if s[d].Seq < g.Seq {
			return false
		}
	}
	return true
}

// Missing lists, per domain, the range of o's transactions that s lacks
// ("0-1-43..0-1-45"), for reporting lost transactions.
func (s GTIDSet) Missing(o GTIDSet) []string {
	var out []string
	for _, d := range sortedDomains(o) {
		g := o[d]
		have := s[d].Seq
		if have >= g.Seq {
			continue
		}
		from := GTID{Domain: d, Server: g.Server, Seq: have + 1}
		if from.Seq == g.Seq {
			out = append(out, g.String())
			continue
		}
		out = append(out, from.String()+".."+g.String())
	}
	return out
}

// behind is how many transactions s lacks of o, summed over domains.
func (s GTIDSet) behind(o GTIDSet) int64 {
	var n int64
	for d, g := range o {
		if have := s[d].Seq; have < g.Seq {
			n += int64(g.Seq - have)
		}
	}
	return n
}

func sortedDomains(s GTIDSet) []uint32 {
	ds := make([]uint32, 0, len(s))
	for d := range s {
		ds = append(ds, d)
	}
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	return ds
}

// merge returns the per-domain maximum of s and o.
func (s GTIDSet) merge(o GTIDSet) GTIDSet {
	out := GTIDSet{}
	for d, g := range s {
		out[d] = g
	}
	for d, g := range o {
		if out[d].Seq < g.Seq {
			out[d] = g
		}
	}
	return out
}

// Behind returns how far position p is behind the reference ref for the
// engine: MariaDB the number of transactions p lacks (summed over domains),
// Redis the replication offset gap. A position that cannot be parsed is an
// error: candidate choice refuses to guess.
func Behind(engine topology.Engine, p, ref topology.Position) (int64, error) {
	switch engine {
	case topology.EngineRedis:
		if ref.Offset <= p.Offset {
			return 0, nil
		}
		return ref.Offset - p.Offset, nil
	default:
		ps, err := ParseGTIDSet(p.GTID)
		if err != nil {
			return 0, err
		}
		rs, err := ParseGTIDSet(ref.GTID)
		if err != nil {
			return 0, err
		}
		return ps.behind(rs), nil
	}
}

// AtLeast reports whether p has everything ref has.
func AtLeast(engine topology.Engine, p, ref topology.Position) (bool, error) {
	n, err := Behind(engine, p, ref)
	return n == 0, err
}

// Lost lists what ref has that p lacks (GTID ranges, or a Redis offset
// range), for the lost_transactions of a forced promotion.
func Lost(engine topology.Engine, p, ref topology.Position) ([]string, error) {
	switch engine {
	case topology.EngineRedis:
		if ref.Offset <= p.Offset {
			return nil, nil
		}
		return []string{fmt.Sprintf("offset %d..%d", p.Offset+1, ref.Offset)}, nil
	default:
		ps, err := ParseGTIDSet(p.GTID)
		if err != nil {
			return nil, err
		}
		rs, err := ParseGTIDSet(ref.GTID)
		if err != nil {
			return nil, err
		}
		return ps.Missing(rs), nil
	}
}

// maxPosition merges positions into the most advanced one known.
func maxPosition(engine topology.Engine, ps []topology.Position) (topology.Position, error) {
	var out topology.Position
	if engine == topology.EngineRedis {
		for _, p := range ps {
			if p.Offset > out.Offset {
				out = p
			}
		}
		return out, nil
	}
	acc := GTIDSet{}
	for _, p := range ps {
		s, err := ParseGTIDSet(p.GTID)
		if err != nil {
			return out, err
		}
		acc = acc.merge(s)
	}
	parts := make([]string, 0, len(acc))
	for _, d := range sortedDomains(acc) {
		parts = append(parts, acc[d].String())
	}
	out.GTID = strings.Join(parts, ",")
	return out, nil
}
