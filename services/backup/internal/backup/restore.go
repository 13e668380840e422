package backup

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// consistentAt is the moment a backup's data corresponds to; older rows
// without ConsistentAt fall back to when the backup finished.
func consistentAt(b Backup) time.Time {
	switch {
	case !b.ConsistentAt.IsZero():
		return b.ConsistentAt
	case !b.FinishedAt.IsZero():
		return b.FinishedAt
	}
	return b.StartedAt
}

// completedOldestFirst returns the completed backups by ConsistentAt.
func completedOldestFirst(backups []Backup) []Backup {
	var out []Backup
	for _, b := range backups {
		if b.Status == StatusCompleted {
			out = append(out, b)
		}
	}
	slices.SortStableFunc(out, func(a, b Backup) int { return consistentAt(a).Compare(consistentAt(b)) })
	return out
}

// hasBinlog reports whether restores of these backups replay binlogs: MySQL
// fulls do, Redis snapshots do not.
func hasBinlog(b Backup) bool { return b.Engine != EngineRedis && b.Kind != KindSnapshot }

// bySeq returns the segments in Seq order.
func bySeq(segments []Segment) []Segment {
	out := slices.Clone(segments)
	slices.SortFunc(out, func(a, b Segment) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// chainFrom returns the segments a replay from position from needs, in
// order, as far as they run without a gap: the first segment holding a
// transaction after from must start at or before it, and each next one
// must start where the previous ended. A position that does not parse
// ends the chain (nothing after it can be trusted).
func chainFrom(from Pos, segs []Segment) []Segment {
	var chain []Segment
	at := from
	for _, s := range segs {
		start, err1 := ParsePos(s.StartPos)
		end, err2 := ParsePos(s.EndPos)
		if err1 != nil || err2 != nil {
			break
		}
		if len(chain) == 0 && at.AtOrAfter(end) {
			continue // wholly in the backup already
		}
		if !at.AtOrAfter(start) {
			break // a gap: transactions between at and start are missing
		}
		chain = append(chain, s)
		at = end
	}
	return chain
}

// reach is how far a restore from b can go: the time and position of the
// last transaction its contiguous segments hold, or the backup's own.
func reach(b Backup, segs []Segment) (time.Time, string, []Segment) {
	at, gtid := consistentAt(b), b.GTID
	if !hasBinlog(b) {
		return at, gtid, nil
	}
	from, err := ParsePos(b.GTID)
	if err != nil {
		return at, gtid, nil
	}
	chain := chainFrom(from, segs)
	if len(chain) == 0 {
		return at, gtid, nil
	}
	last := chain[len(chain)-1]
	if last.LastAt.After(at) {
		at = last.LastAt
	}
	return at, last.EndPos, chain
}

// RestoreWindow computes an instance's window from its completed backups
// and its contiguous segments; ok is false when nothing can be restored.
// Earliest is the oldest completed backup's ConsistentAt; Latest the last
// transaction the segments after the newest backup hold without a gap (or
// that backup's ConsistentAt). A gap inside the window (segments lost)
// shows when a restore is planned.
// A Redis instance's window also spans its AOF chains (aof.go).
func RestoreWindow(backups []Backup, segments []Segment) (w Window, ok bool) {
	if done := completedOldestFirst(backups); len(done) > 0 {
		newest := done[len(done)-1]
		latest, gtid, _ := reach(newest, bySeq(segments))
		w, ok = Window{Earliest: consistentAt(done[0]), Latest: latest, LatestGTID: gtid}, true
	}
	if earliest, latest, has := aofSpan(segments); has {
		if !ok || earliest.Before(w.Earliest) {
			w.Earliest = earliest
		}
		if !ok || latest.After(w.Latest) {
			w.Latest = latest
		}
		ok = true
	}
	return w, ok
}

// PlanRestore chooses the backup and segments that reach t. Errors:
// ErrInvalid (not exactly one of the target's fields, a GTID that does not
// parse or targets a Redis instance, a backup that is not completed),
// ErrNotFound (unknown backup id), ErrNoBackup (no completed backup at
// all), *OutsideWindowError (a time or GTID after the window's end or
// before its start, or a gap in the segments before the target).
// A point in time includes every transaction whose binlog timestamp is at
// or before that second (StopBefore = the next second); a Redis point in
// time is replayed from the AOF archive to the second when a chain covers
// it (aof.go), else it is the newest snapshot at or before it.
func PlanRestore(backups []Backup, segments []Segment, t Target) (RestorePlan, error) {
	set := 0
	for _, isSet := range []bool{t.BackupID != "", !t.PointInTime.IsZero(), t.GTID != ""} {
		if isSet {
			set++
		}
	}
	if set != 1 {
		return RestorePlan{}, fmt.Errorf("%w: a restore target is exactly one of backup_id, point_in_time and gtid", ErrInvalid)
	}
	if t.BackupID != "" {
		return planBackup(backups, t.BackupID)
	}
	done := completedOldestFirst(backups)
	w, ok := RestoreWindow(backups, segments)
	if !ok {
		return RestorePlan{}, ErrNoBackup
	}
	segs := bySeq(segments)
	if t.GTID != "" {
		if len(done) == 0 {
			return RestorePlan{}, fmt.Errorf("%w: a gtid target needs a MySQL instance", ErrInvalid)
		}
		return planGTID(done, segs, w, t.GTID)
	}
	if plan, ok := planAOF(segs, t.PointInTime.UTC().Truncate(time.Second)); ok {
		return plan, nil
	}
	if len(done) == 0 {
		return RestorePlan{}, &OutsideWindowError{Window: w}
	}
	return planTime(done, segs, w, t.PointInTime)
}

func planBackup(backups []Backup, id string) (RestorePlan, error) {
	for _, b := range backups {
		if b.ID != id {
			continue
		}
		if b.Status != StatusCompleted {
			return RestorePlan{}, fmt.Errorf("%w: backup %s is %s, not completed", ErrInvalid, id, b.Status)
		}
		return RestorePlan{Backup: b}, nil
	}
	return RestorePlan{}, fmt.Errorf("backup %s: %w", id, ErrNotFound)
}

// planTime plans a point in time, to the second, inclusive.
func planTime(done []Backup, segs []Segment, w Window, at time.Time) (RestorePlan, error) {
	at = at.UTC().Truncate(time.Second)
	stop := at.Add(time.Second)
	// A backup serves the target when everything it holds was committed
	// by the target's second: its consistent moment is before stop.
	i := len(done) - 1
	for i >= 0 && !consistentAt(done[i]).Before(stop) {
		i--
	}
	if i < 0 || at.After(w.Latest) {
		return RestorePlan{}, &OutsideWindowError{Window: w}
	}
	b := done[i]
	if !hasBinlog(b) {
		return RestorePlan{Backup: b}, nil
	}
	reached, _, chain := reach(b, segs)
	if at.After(reached) {
		return RestorePlan{}, &OutsideWindowError{Window: w}
	}
	plan := RestorePlan{Backup: b, StopBefore: stop}
	for _, s := range chain {
		if !s.FirstAt.Before(stop) {
			break
		}
		plan.Segments = append(plan.Segments, s)
	}
	return plan, nil
}

// planGTID plans a GTID position (one GTID or several domains'), through
// it inclusive.
func planGTID(done []Backup, segs []Segment, w Window, gtid string) (RestorePlan, error) {
	target, err := ParsePos(gtid)
	if err != nil {
		return RestorePlan{}, fmt.Errorf("restore target: %w", err)
	}
	if len(target) == 0 {
		return RestorePlan{}, fmt.Errorf("%w: empty gtid target", ErrInvalid)
	}
	if !hasBinlog(done[len(done)-1]) {
		return RestorePlan{}, fmt.Errorf("%w: a gtid target needs a MySQL instance", ErrInvalid)
	}
	// The newest backup not past the target in any of its domains.
	i := len(done) - 1
	for ; i >= 0; i-- {
		if notPast(mustPos(done[i].GTID), target) {
			break
		}
	}
	if i < 0 {
		return RestorePlan{}, &OutsideWindowError{Window: w}
	}
	b := done[i]
	plan := RestorePlan{Backup: b, StopGTID: target.String()}
	from, err := ParsePos(b.GTID)
	if err != nil {
		return RestorePlan{}, &OutsideWindowError{Window: w}
	}
	if from.AtOrAfter(target) {
		return plan, nil
	}
	for _, s := range chainFrom(from, segs) {
		plan.Segments = append(plan.Segments, s)
		if mustPos(s.EndPos).AtOrAfter(target) {
			return plan, nil
		}
	}
	return RestorePlan{}, &OutsideWindowError{Window: w}
}

// notPast reports whether p holds no transaction after target in target's
// domains.
func notPast(p, target Pos) bool {
	for d, g := range target {
		if have, ok := p[d]; ok && have.Seq > g.Seq {
			return false
		}
	}
	return true
}
