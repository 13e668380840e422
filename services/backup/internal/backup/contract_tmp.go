package backup

import "time"

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
func ParseGTID(s string) (GTID, error) { panic("contract") }

// String formats "domain-server-seq".
func (g GTID) String() string { panic("contract") }

// ParsePos parses a comma-separated GTID position; "" is the empty one.
func ParsePos(s string) (Pos, error) { panic("contract") }

// String formats the position with domains in ascending order.
func (p Pos) String() string { panic("contract") }

// Contains reports whether g is at or before p in g's domain.
func (p Pos) Contains(g GTID) bool { panic("contract") }

// AtOrAfter reports whether p has reached every domain's sequence of q.
func (p Pos) AtOrAfter(q Pos) bool { panic("contract") }

// Resolve applies overrides in order (plan, then instance) to base.
func Resolve(base Policy, overrides ...PolicyOverride) Policy { panic("contract") }

// Validate reports an override that cannot be applied (negative counts,
// a window of more than 24h, a PITR window longer than the daily
// retention, ...), wrapping ErrInvalid and naming the field.
func (o PolicyOverride) Validate() error { panic("contract") }

// NextFull is when the instance's next scheduled full backup (MySQL) or
// snapshot (Redis: every SnapshotEvery) is due, given its last started
// scheduled or completed one (zero: none yet, due at once). Daily fulls
// fall in the window; a day whose window passed without a backup gets one
// as soon as possible.
func NextFull(p Policy, e Engine, last time.Time, now time.Time) time.Time { panic("contract") }

// NextDrill is when the next scheduled drill is due (zero time: never).
func NextDrill(p Policy, last time.Time, now time.Time) time.Time { panic("contract") }

// Retention decides what to remove: backups (completed ones past
// DailyKeepDays that are not the monthly kept ones, failed ones after a
// day) and segments (those that end before the oldest kept backup needed
// for PITRDays of point-in-time restore). Backups of deleted instances
// follow the same rules. The newest completed backup is always kept.
// It also marks which backups are monthly (first completed of each month).
type Retention struct {
	DropBackups  []string
	DropSegments []int64
	Monthly      []string
}

// Retain applies p to an instance's backups and segments at now.
func Retain(p Policy, backups []Backup, segments []Segment, now time.Time) Retention { panic("contract") }

// RestoreWindow computes an instance's window from its completed backups
// and its contiguous segments; ok is false when nothing can be restored.
func RestoreWindow(backups []Backup, segments []Segment) (w Window, ok bool) { panic("contract") }

// PlanRestore chooses the backup and segments that reach t. Errors:
// ErrInvalid (not exactly one of the target's fields, a GTID that does not
// parse, a backup that is not completed), ErrNotFound (unknown backup id),
// ErrNoBackup, *OutsideWindowError (a time or GTID after the window's end
// or before its start, or a gap in the segments before the target).
// A point in time includes every transaction whose binlog timestamp is at
// or before that second (StopBefore = the next second).
func PlanRestore(backups []Backup, segments []Segment, t Target) (RestorePlan, error) { panic("contract") }

// ChooseSource picks the node to back up: a healthy replica when there is
// one (preferring the primary's region), else the healthy primary; never a
// fenced node. fromReplica tells which.
func ChooseSource(in Instance) (n Node, fromReplica bool, err error) { panic("contract") }

// Primary returns the instance's current primary node.
func Primary(in Instance) (Node, error) { panic("contract") }

// CompareStats lists every difference between what a drill expected and
// measured: table count, keys, and each sampled table's rows, checksum and
// CHECK TABLE verdict. Empty means equal.
func CompareStats(expected, measured DataStats) []string { panic("contract") }
