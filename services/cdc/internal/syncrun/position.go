package syncrun

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// gtid is one domain's last transaction of a GTID position.
type gtid struct {
	server uint32
	seq    uint64
}

// position is a MariaDB GTID position: the last transaction per domain.
type position map[uint32]gtid

// parsePosition reads "0-1-100,1-2-7" (gtid_binlog_pos syntax).
func parsePosition(s string) (position, error) {
	pos := position{}
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
		if cur, ok := pos[uint32(d)]; !ok || seq > cur.seq {
			pos[uint32(d)] = gtid{server: uint32(srv), seq: seq}
		}
	}
	return pos, nil
}

// covers reports whether applied reached want in every domain of want
// (sequence numbers grow by one per transaction within a domain under
// gtid_strict_mode). With own set, a domain whose last transaction of want
// was written by that server id also counts as reached: it is the job's own
// echo, which the capture skips and only passes at its next checkpoint.
func covers(applied, want position, own uint32) bool {
	for d, w := range want {
		if a, ok := applied[d]; ok && a.seq >= w.seq {
			continue
		}
		if own != 0 && w.server == own {
			continue
		}
		return false
	}
	return true
}

// coversText is covers on position text; an unreadable position never
// covers.
func coversText(applied, want string, own uint32) bool {
	a, err := parsePosition(applied)
	if err != nil {
		return false
	}
	w, err := parsePosition(want)
	if err != nil {
		return false
	}
	return covers(a, w, own)
}
