package backup

import "time"

// NextFull is when the instance's next scheduled full backup (MySQL) or
// snapshot (Redis: every SnapshotEvery) is due, given its last started
// scheduled or completed one (zero: none yet, due at once). Daily fulls
// fall in the window; a day whose window passed without a backup gets one
// as soon as possible: the result is then in the past, which means due now.
// The caller checks p.Enabled; NextFull only computes the time.
func NextFull(p Policy, e Engine, last time.Time, now time.Time) time.Time {
	if last.IsZero() {
		return now
	}
	if e == EngineRedis && p.SnapshotEvery > 0 {
		return last.Add(p.SnapshotEvery)
	}
	// The window last belongs to is the latest window start at or before
	// it; a late (catch-up) backup thus counts for the day whose window it
	// follows, and the next one is due at the following day's window.
	return windowStartAtOrBefore(p.WindowStart, last).Add(day)
}

// windowStartAtOrBefore returns the latest moment at or before t that is
// start past a midnight UTC.
func windowStartAtOrBefore(start time.Duration, t time.Time) time.Time {
	t = t.UTC()
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	w := midnight.Add(start)
	if w.After(t) {
		w = w.Add(-day)
	}
	return w
}

// NextDrill is when the next scheduled drill is due (zero time: never,
// when drills are off or the policy disabled); with no drill yet it is due
// at once.
func NextDrill(p Policy, last time.Time, now time.Time) time.Time {
	if !p.Enabled || p.DrillEvery <= 0 {
		return time.Time{}
	}
	if last.IsZero() {
		return now
	}
	return last.Add(p.DrillEvery)
}
