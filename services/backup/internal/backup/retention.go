package backup

import "time"

// Retention decides what to remove: backups (completed ones past
// DailyKeepDays that are not the monthly kept ones nor the one PITRDays of
// point-in-time restore start from, failed ones after a day) and segments
// (those that end before the oldest kept backup needed for PITRDays of
// point-in-time restore, but never the newest segment; of a Redis AOF
// archive, the chains that ended before that window, never the newest). Backups of deleted instances follow the same
// rules. The newest completed backup is always kept; running and expired
// ones are never in DropBackups.
// Monthly lists every backup that is its month's (the first completed of
// each month UTC, or the one marked already), whether marked yet or not;
// none of them is in DropBackups.
type Retention struct {
	DropBackups  []string
	DropSegments []int64
	Monthly      []string
}

// failedKeep is how long a failed backup's row (and what it left) stays.
const failedKeep = day

// Retain applies p to an instance's backups and segments at now.
func Retain(p Policy, backups []Backup, segments []Segment, now time.Time) Retention {
	var r Retention
	done := completedOldestFirst(backups)
	keep := map[string]bool{}

	// Monthly: per month, the one marked already, else the first completed.
	monthly := map[string]Backup{}
	var months []string
	for _, b := range done {
		m := consistentAt(b).UTC().Format("2006-01")
		cur, seen := monthly[m]
		if !seen {
			months = append(months, m)
		}
		if !seen || (b.Monthly && !cur.Monthly) {
			monthly[m] = b
		}
	}
	monthlyCutoff := now.AddDate(0, -p.MonthlyKeepMonths, 0)
	for _, m := range months {
		b := monthly[m]
		if p.MonthlyKeepMonths > 0 && consistentAt(b).After(monthlyCutoff) {
			keep[b.ID] = true
			r.Monthly = append(r.Monthly, b.ID)
		}
	}

	dailyCutoff := now.Add(-time.Duration(p.DailyKeepDays) * day)
	for _, b := range done {
		if !consistentAt(b).Before(dailyCutoff) {
			keep[b.ID] = true
		}
	}

	// The full the oldest restorable point needs: the newest one at or
	// before it (none: every backup is newer, and kept by the daily rule
	// when PITRDays <= DailyKeepDays).
	var anchor *Backup
	pitrCutoff := now.Add(-time.Duration(p.PITRDays) * day)
	for i := range done {
		if !consistentAt(done[i]).After(pitrCutoff) {
			anchor = &done[i]
		}
	}
	if anchor != nil {
		keep[anchor.ID] = true
	}
	if len(done) > 0 {
		keep[done[len(done)-1].ID] = true
	}

	for _, b := range backups {
		switch b.Status {
		case StatusCompleted:
			if !keep[b.ID] {
				r.DropBackups = append(r.DropBackups, b.ID)
			}
		case StatusFailed:
			end := b.FinishedAt
			if end.IsZero() {
				end = b.StartedAt
			}
			if now.Sub(end) > failedKeep {
				r.DropBackups = append(r.DropBackups, b.ID)
			}
		}
	}

	if len(segments) > 0 && IsAOF(segments[0]) {
		r.DropSegments = retainAOF(segments, pitrCutoff)
		return r
	}

	// Segments wholly inside the oldest backup replay starts from (the
	// anchor, or the oldest completed one when all are newer) are not
	// needed; only a prefix goes, so the chain stays without holes.
	from := anchor
	if from == nil && len(done) > 0 {
		from = &done[0]
	}
	if from == nil || !hasBinlog(*from) {
		return r
	}
	pos, err := ParsePos(from.GTID)
	if err != nil || len(pos) == 0 {
		return r
	}
	// The newest segment stays whatever it holds: the archive resumes at
	// its EndPos and numbers the next one after it.
	segs := bySeq(segments)
	for i, s := range segs {
		if i == len(segs)-1 {
			break
		}
		end, err := ParsePos(s.EndPos)
		if err != nil || !pos.AtOrAfter(end) {
			break
		}
		r.DropSegments = append(r.DropSegments, s.Seq)
	}
	return r
}
