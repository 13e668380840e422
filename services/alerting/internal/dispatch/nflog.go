package dispatch

import (
	"container/heap"
	"slices"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// notificationLog is Alertmanager's nflog reduced to what dedup needs: the
// last notification per (receiver, group key), dropped at its ExpiresAt.
type notificationLog struct {
	entries map[string]*LogEntry
	expiry  expiryHeap
}

func newNotificationLog() *notificationLog {
	return &notificationLog{entries: map[string]*LogEntry{}}
}

func logKey(receiver, groupKey string) string { return receiver + "\x00" + groupKey }

// isLogKey reports whether k is logKey(receiver, groupKey), without
// building it.
func isLogKey(k, receiver, groupKey string) bool {
	return len(k) == len(receiver)+1+len(groupKey) && k[:len(receiver)] == receiver &&
		k[len(receiver)] == 0 && k[len(receiver)+1:] == groupKey
}

// put records a copy of e (sorted), replacing the entry of its receiver
// and group.
func (l *notificationLog) put(e LogEntry) {
	e.Firing = slices.Clone(e.Firing)
	e.Resolved = slices.Clone(e.Resolved)
	slices.Sort(e.Firing)
	slices.Sort(e.Resolved)
	l.putKey(logKey(e.Receiver, e.GroupKey), e)
}

// putKey records e under k (logKey of its receiver and group) as is: the
// dispatcher's own entries are sorted already and never changed after.
func (l *notificationLog) putKey(k string, e LogEntry) {
	l.entries[k] = &e
	if !e.ExpiresAt.IsZero() {
		heap.Push(&l.expiry, expiryItem{key: k, at: e.ExpiresAt})
	}
}

// get returns the live entry under k (logKey of a receiver and group), nil
// when there is none or it has expired.
func (l *notificationLog) get(k string, now time.Time) *LogEntry {
	e := l.entries[k]
	if e == nil || expired(e, now) {
		return nil
	}
	return e
}

func expired(e *LogEntry, now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !e.ExpiresAt.After(now)
}

// gc drops expired entries; a heap item whose entry was replaced since is
// skipped, so each commit costs O(log n) and gc only what expires.
func (l *notificationLog) gc(now time.Time) {
	for l.expiry.Len() > 0 && !l.expiry[0].at.After(now) {
		it := heap.Pop(&l.expiry).(expiryItem)
		if e := l.entries[it.key]; e != nil && expired(e, now) {
			delete(l.entries, it.key)
		}
	}
}

type expiryItem struct {
	key string
	at  time.Time
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// needsUpdate is Alertmanager's DedupStage.needsUpdate over the unmuted
// firing and resolved fingerprints (sorted) of a group at now.
func needsUpdate(e *LogEntry, firing, resolved []alert.Fingerprint, sendResolved bool,
	repeat time.Duration, now time.Time) bool {
	// Never notified: notify unless only resolved alerts are left (the
	// receiver never heard of them).
	if e == nil {
		return len(firing) > 0
	}
	if !subset(firing, e.Firing) {
		return true
	}
	// Everything resolved: notify (even without send_resolved, so the log
	// forgets the firing set) unless the last notification had nothing
	// firing either — then the alerts came and went between two flushes.
	if len(firing) == 0 {
		return len(e.Firing) > 0
	}
	if sendResolved && !subset(resolved, e.Resolved) {
		return true
	}
	return e.SentAt.Before(now.Add(-repeat))
}

// subset reports whether every element of sub (sorted) is in set (sorted).
func subset(sub, set []alert.Fingerprint) bool {
	i := 0
	for _, f := range sub {
		for i < len(set) && set[i] < f {
			i++
		}
		if i == len(set) || set[i] != f {
			return false
		}
	}
	return true
}
