package binlogarchive

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// gtid is one MariaDB global transaction id.
type gtid struct {
	domain, server uint32
	seq            uint64
}

func (g gtid) String() string {
	return fmt.Sprintf("%d-%d-%d", g.domain, g.server, g.seq)
}

// position is a MariaDB GTID position: the last transaction per domain.
// It stays private and small: backup.Pos is the domain's type, and the
// archiver only needs to parse, advance and format.
type position map[uint32]gtid

func parseGTID(s string) (gtid, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return gtid{}, fmt.Errorf("gtid %q: want domain-server-seq", s)
	}
	d, err := strconv.ParseUint(parts[0], 10, 32)
	if err != nil {
		return gtid{}, fmt.Errorf("gtid %q domain: %w", s, err)
	}
	sv, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return gtid{}, fmt.Errorf("gtid %q server: %w", s, err)
	}
	n, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return gtid{}, fmt.Errorf("gtid %q seq: %w", s, err)
	}
	return gtid{domain: uint32(d), server: uint32(sv), seq: n}, nil
}

// parsePosition parses "d-s-n[,d-s-n]"; "" is the empty position.
func parsePosition(s string) (position, error) {
	p := position{}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		g, err := parseGTID(part)
		if err != nil {
			return nil, err
		}
		if _, dup := p[g.domain]; dup {
			return nil, fmt.Errorf("position %q: domain %d twice", s, g.domain)
		}
		p[g.domain] = g
	}
	return p, nil
}

// String formats the position with domains in ascending order, so equal
// positions have equal strings (segments chain by string equality).
func (p position) String() string {
	domains := make([]uint32, 0, len(p))
	for d := range p {
		domains = append(domains, d)
	}
	sort.Slice(domains, func(i, j int) bool { return domains[i] < domains[j] })
	parts := make([]string, len(domains))
	for i, d := range domains {
		parts[i] = p[d].String()
	}
	return strings.Join(parts, ",")
}

func (p position) clone() position {
	c := make(position, len(p))
	for d, g := range p {
		c[d] = g
	}
	return c
}

// has reports whether g is at or before p in its domain: a transaction
// the archive already holds.
func (p position) has(g gtid) bool {
	cur, ok := p[g.domain]
	return ok && g.seq <= cur.seq
}
