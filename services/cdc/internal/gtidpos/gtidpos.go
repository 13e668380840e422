// Package gtidpos reads and compares MariaDB GTID positions
// ("0-1-100,1-2-7", gtid_binlog_pos syntax: the last transaction per
// domain), as CDC streams and sync jobs measure lag and coverage. Under
// gtid_strict_mode sequence numbers grow by one per transaction within a
// domain, so positions compare per domain by sequence number.
package gtidpos

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// GTID is a domain's last transaction: who wrote it and its sequence number.
type GTID struct {
	Server uint32
	Seq    uint64
}

// Position is the last transaction per domain.
type Position map[uint32]GTID

// Parse reads a position; the empty string is the empty position.
func Parse(s string) (Position, error) {
	pos := Position{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("gtid %q: want domain-server-seq", part)
		}
		d, err1 := strconv.ParseUint(f[0], 10, 32)
		srv, err2 := strconv.ParseUint(f[1], 10, 32)
		seq, err3 := strconv.ParseUint(f[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("gtid %q: %w", part, err)
		}
		if cur, ok := pos[uint32(d)]; !ok || seq > cur.Seq {
			pos[uint32(d)] = GTID{Server: uint32(srv), Seq: seq}
		}
	}
	return pos, nil
}

// Covers reports whether p reached want in every domain of want. With own
// set, a domain whose last transaction of want was written by that server
// id counts as reached too: a sync job's own echo, which its capture skips
// and passes only at its next checkpoint.
func (p Position) Covers(want Position, own uint32) bool {
	for d, w := range want {
		if a, ok := p[d]; ok && a.Seq >= w.Seq {
			continue
		}
		if own != 0 && w.Server == own {
			continue
		}
		return false
	}
	return true
}

// CoversText is Covers on position text; an unreadable position never
// covers and is never covered.
func CoversText(applied, want string, own uint32) bool {
	a, err := Parse(applied)
	if err != nil {
		return false
	}
	w, err := Parse(want)
	if err != nil {
		return false
	}
	return a.Covers(w, own)
}

// Behind is how many transactions source is ahead of checkpoint in the
// domains of source, and whether checkpoint is at source in every one.
func Behind(source, checkpoint Position) (events int64, caughtUp bool) {
	caughtUp = true
	for d, s := range source {
		c, ok := checkpoint[d]
		if !ok {
			caughtUp = false
			continue
		}
		if s.Seq > c.Seq {
			events += int64(s.Seq - c.Seq)
			caughtUp = false
		}
	}
	return events, caughtUp
}
