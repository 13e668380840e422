package backup

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A Redis instance's point-in-time archive is its primary's append-only
// file (Redis 7 multi-part AOF: one base file, then incr files of
// commands, with "#TS:<unix seconds>" annotations when
// aof-timestamp-enabled is on). The archive stores it as chains: a chain
// is a base segment (the base file as it was) followed by incr segments
// (consecutive byte ranges of the incr files that follow that base), with
// consecutive sequence numbers. A base plus a prefix of its chain's incr
// bytes is a valid AOF; cut at a second (redis-check-aof
// --truncate-to-timestamp) it is the data set as of that second. A new
// chain starts when the primary rewrites its AOF (a new base), after a
// failover (another node's files) and when the archive could not resume
// where it stopped.

// aofPrefix marks a segment position as an AOF one (MySQL positions are
// GTID lists).
const aofPrefix = "aof:"

// AOFPos is a position in a Redis instance's AOF archive.
type AOFPos struct {
	// Chain names one chain: a fresh id each time a base is archived.
	Chain string
	// Node, Base and BaseStamp identify the base file the chain started
	// from: the node, the file's name and its modification time (unix
	// nanoseconds), so a resumed archive knows whether the files on the
	// node still continue the chain.
	Node      string
	Base      string
	BaseStamp int64
	// File is the incr file and Offset the bytes of it archived; a base
	// segment's start has File "".
	File   string
	Offset int64
}

// String encodes p for Segment.StartPos and EndPos.
func (p AOFPos) String() string {
	return aofPrefix + strings.Join([]string{p.Chain, p.Node, p.Base, strconv.FormatInt(p.BaseStamp, 10), p.File,
		strconv.FormatInt(p.Offset, 10)}, "|")
}

// ParseAOFPos decodes a position String wrote.
func ParseAOFPos(s string) (AOFPos, error) {
	rest, ok := strings.CutPrefix(s, aofPrefix)
	if !ok {
		return AOFPos{}, fmt.Errorf("%w: %q is not an aof position", ErrInvalid, s)
	}
	f := strings.Split(rest, "|")
	if len(f) != 6 || f[0] == "" || f[2] == "" {
		return AOFPos{}, fmt.Errorf("%w: aof position %q: want chain|node|base|stamp|file|offset", ErrInvalid, s)
	}
	stamp, err1 := strconv.ParseInt(f[3], 10, 64)
	off, err2 := strconv.ParseInt(f[5], 10, 64)
	if err1 != nil || err2 != nil || off < 0 {
		return AOFPos{}, fmt.Errorf("%w: aof position %q: bad number", ErrInvalid, s)
	}
	return AOFPos{Chain: f[0], Node: f[1], Base: f[2], BaseStamp: stamp, File: f[4], Offset: off}, nil
}

// IsAOF reports whether s is a segment of a Redis AOF archive.
func IsAOF(s Segment) bool { return strings.HasPrefix(s.StartPos, aofPrefix) }

// IsAOFBase reports whether s is the base segment of an AOF chain.
func IsAOFBase(s Segment) bool {
	p, err := ParseAOFPos(s.StartPos)
	return err == nil && p.File == ""
}

// aofChain is one restorable chain: its base segment first.
type aofChain struct {
	segs       []Segment
	start, end time.Time
}

// aofChains returns the instance's complete chains in order: each a base
// segment followed by the segments of the same chain with consecutive
// sequence numbers (a missing one ends the chain there). Start is the
// base's time (FirstAt: the second its file was written, by which the
// data it holds was), end the last archived command's second.
func aofChains(segments []Segment) []aofChain {
	var out []aofChain
	var cur *aofChain
	var curID string
	for _, s := range bySeq(segments) {
		start, err := ParseAOFPos(s.StartPos)
		if err != nil {
			cur = nil
			continue
		}
		if start.File == "" {
			out = append(out, aofChain{segs: []Segment{s}, start: s.FirstAt, end: s.LastAt})
			cur, curID = &out[len(out)-1], start.Chain
			continue
		}
		if cur == nil || start.Chain != curID || s.Seq != cur.segs[len(cur.segs)-1].Seq+1 {
			cur = nil // no base before it, or a piece missing: unusable
			continue
		}
		cur.segs = append(cur.segs, s)
		if s.LastAt.After(cur.end) {
			cur.end = s.LastAt
		}
	}
	return out
}

// aofSpan is the earliest and latest second the chains reach; ok is
// false without a chain.
func aofSpan(segments []Segment) (earliest, latest time.Time, ok bool) {
	for _, c := range aofChains(segments) {
		if !ok || c.start.Before(earliest) {
			earliest = c.start
		}
		if !ok || c.end.After(latest) {
			latest = c.end
		}
		ok = true
	}
	return earliest, latest, ok
}

// planAOF plans a restore to second at from the newest chain that covers
// it: the base and every segment whose first command is not after at;
// the restore cuts the last one at StopBefore.
func planAOF(segments []Segment, at time.Time) (RestorePlan, bool) {
	chains := aofChains(segments)
	for i := len(chains) - 1; i >= 0; i-- {
		c := chains[i]
		if at.Before(c.start) || at.After(c.end) {
			continue
		}
		plan := RestorePlan{Segments: []Segment{c.segs[0]}, StopBefore: at.Add(time.Second)}
		for _, s := range c.segs[1:] {
			if s.FirstAt.After(at) {
				break
			}
			plan.Segments = append(plan.Segments, s)
		}
		return plan, true
	}
	return RestorePlan{}, false
}

// retainAOF lists the segments to drop: a prefix (in sequence order) of
// segments outside every chain and of chains that ended before cutoff,
// never the newest chain (the archive resumes at its end).
func retainAOF(segments []Segment, cutoff time.Time) []int64 {
	chains := aofChains(segments)
	if len(chains) == 0 {
		return nil
	}
	newest := chains[len(chains)-1]
	keepFrom := newest.segs[0].Seq
	for _, c := range chains[:len(chains)-1] {
		if !c.end.Before(cutoff) {
			keepFrom = c.segs[0].Seq
			break
		}
	}
	var drop []int64
	for _, s := range bySeq(segments) {
		if s.Seq >= keepFrom {
			break
		}
		drop = append(drop, s.Seq)
	}
	return drop
}
