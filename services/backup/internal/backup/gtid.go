package backup

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Pos is a MariaDB GTID position: per replication domain, the last
// transaction's server id and sequence number ("0-1-42,1-7-3").
type Pos map[uint32]GTID

// GTID is one MariaDB global transaction id.
type GTID struct {
	Domain   uint32
	ServerID uint32
	Seq      uint64
}

// ParseGTID parses "domain-server-seq".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("%w: gtid %q is not domain-server-seq", ErrInvalid, s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	srv, err2 := strconv.ParseUint(parts[1], 10, 32)
	seq, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("%w: gtid %q is not domain-server-seq", ErrInvalid, s)
	}
	return GTID{Domain: uint32(d), ServerID: uint32(srv), Seq: seq}, nil
}

// String formats "domain-server-seq".
func (g GTID) String() string {
	return strconv.FormatUint(uint64(g.Domain), 10) + "-" + strconv.FormatUint(uint64(g.ServerID), 10) + "-" +
		strconv.FormatUint(g.Seq, 10)
}

// ParsePos parses a comma-separated GTID position; "" is the empty one.
// A domain may appear once.
func ParsePos(s string) (Pos, error) {
	p := Pos{}
	// MariaDB prints long positions over several lines.
	s = strings.NewReplacer("\n", "", "\r", "").Replace(s)
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		g, err := ParseGTID(part)
		if err != nil {
			return nil, fmt.Errorf("parse position %q: %w", s, err)
		}
		if _, dup := p[g.Domain]; dup {
			return nil, fmt.Errorf("parse position %q: %w: domain %d twice", s, ErrInvalid, g.Domain)
		}
		p[g.Domain] = g
	}
	return p, nil
}

// String formats the position with domains in ascending order.
func (p Pos) String() string {
	var sb strings.Builder
	for i, d := range slices.Sorted(maps.Keys(p)) {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(p[d].String())
	}
	return sb.String()
}

// Contains reports whether g is at or before p in g's domain. Sequence
// numbers grow within a domain whichever server wrote them, so the server
// id plays no part.
func (p Pos) Contains(g GTID) bool {
	have, ok := p[g.Domain]
	return ok && g.Seq <= have.Seq
}

// AtOrAfter reports whether p has reached every domain's sequence of q.
func (p Pos) AtOrAfter(q Pos) bool {
	for _, g := range q {
		if !p.Contains(g) {
			return false
		}
	}
	return true
}

// Equal reports whether p and q hold the same sequence in every domain.
func (p Pos) Equal(q Pos) bool { return p.AtOrAfter(q) && q.AtOrAfter(p) }

// mustPos parses s, treating an unparsable position as empty: stored
// positions were validated when written.
func mustPos(s string) Pos {
	p, err := ParsePos(s)
	if err != nil {
		return Pos{}
	}
	return p
}
