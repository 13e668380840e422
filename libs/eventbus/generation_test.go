package eventbus_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/eventbus"
)

// member records what the assignment hooks of one subscriber report.
type member struct {
	name     string
	owned    []int // partitions of the current generation; nil between generations
	assigned int   // OnAssigned calls
	revoked  [][]int
	seen     map[string]bool // event ids handled since the last assignment
}

// TestAssignmentHooksShareAndHandOver runs two replaying subscribers in one
// group: their assignments are disjoint at every moment and together cover
// every partition; the one that leaves is told its partitions are revoked
// before it stops, and the other then owns and replays them all.
func TestAssignmentHooksShareAndHandOver(t *testing.T) {
	broker := startBroker(t)
	const partitions, records = 4, 24
	topic := newTopic(t, broker, partitions)
	group := uniqueName(t, "group")
	publishNumbered(t, newPublisher(t, broker), topic, 0, records, func(i int) string { return fmt.Sprintf("agg-%d", i) })

	var mu sync.Mutex
	var overlaps []string
	members := map[string]*member{"a": {name: "a"}, "b": {name: "b"}}
	start := func(m *member) func() {
		other := members["a"]
		if m.name == "a" {
			other = members["b"]
		}
		return runSubscriber(t, fastSubscriberConfig(broker, group, topic),
			func(ctx context.Context, e eventbus.Event) error {
				mu.Lock()
				defer mu.Unlock()
				if !slices.Contains(m.owned, e.Partition) {
					overlaps = append(overlaps, fmt.Sprintf("%s handled %s of partition %d it does not own (%v)", m.name, e.ID, e.Partition, m.owned))
				}
				m.seen[e.ID] = true
				return nil
			},
			eventbus.OnAssigned(func(_ context.Context, a eventbus.Assignment) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range a[topic] {
					if slices.Contains(other.owned, p) {
						overlaps = append(overlaps, fmt.Sprintf("%s assigned partition %d still owned by %s", m.name, p, other.name))
					}
				}
				m.owned = a[topic]
				if m.owned == nil {
					m.owned = []int{}
				}
				m.assigned++
				m.seen = map[string]bool{}
			}),
			eventbus.OnRevoked(func(ctx context.Context, a eventbus.Assignment) {
				if _, ok := ctx.Deadline(); !ok {
					t.Errorf("%s: revocation context has no deadline", m.name)
				}
				mu.Lock()
				defer mu.Unlock()
				m.revoked = append(m.revoked, a[topic])
				m.owned = nil
			}),
			eventbus.Replay())
	}
	a, b := members["a"], members["b"]
	start(a)
	stopB := start(b)

	all := []int{0, 1, 2, 3}
	waitFor(t, 30*time.Second, "both members own a share covering every partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(a.owned) == 0 || len(b.owned) == 0 {
			return false
		}
		union := slices.Sorted(slices.Values(append(slices.Clone(a.owned), b.owned...)))
		return slices.Equal(union, all)
	})

	mu.Lock()
	bOwned := slices.Clone(b.owned)
	mu.Unlock()
	stopB()
	mu.Lock()
	if len(b.revoked) == 0 || !slices.Equal(b.revoked[len(b.revoked)-1], bOwned) {
		t.Errorf("leaving member's revocations %v, want last %v", b.revoked, bOwned)
	}
	if b.owned != nil {
		t.Errorf("leaving member still owns %v after Run returned", b.owned)
	}
	mu.Unlock()

	waitFor(t, 30*time.Second, "the remaining member owns and replays every partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(a.owned, all) && len(a.seen) == records
	})
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("assignments overlapped:\n%v", overlaps)
	}
	if a.assigned < 2 || len(a.revoked) < 1 {
		t.Errorf("remaining member: %d assignments, revocations %v; want a hand-over", a.assigned, a.revoked)
	}
	if got := committed(t, broker, group, topic, all...); len(got) > 0 {
		for p, off := range got {
			if off >= 0 {
				t.Errorf("replaying group committed offset %d of partition %d", off, p)
			}
		}
	}
}

// TestAssignmentHooksCommitHandledOffsets: without Replay a subscriber with
// hooks consumes like any other, committing what it handled, and its
// revocation comes after the commit.
func TestAssignmentHooksCommitHandledOffsets(t *testing.T) {
	broker := startBroker(t)
	topic := newTopic(t, broker, 1)
	group := uniqueName(t, "group")
	const records = 5
	publishNumbered(t, newPublisher(t, broker), topic, 0, records, func(int) string { return "agg" })
	var mu sync.Mutex
	handled := 0
	var assigned, revoked []eventbus.Assignment
	var committedAtRevoke map[int]int64
	stop := runSubscriber(t, fastSubscriberConfig(broker, group, topic),
		func(context.Context, eventbus.Event) error {
			mu.Lock()
			defer mu.Unlock()
			handled++
			return nil
		},
		eventbus.OnAssigned(func(_ context.Context, a eventbus.Assignment) {
			mu.Lock()
			defer mu.Unlock()
			assigned = append(assigned, a)
		}),
		eventbus.OnRevoked(func(_ context.Context, a eventbus.Assignment) {
			c := committed(t, broker, group, topic, 0)
			mu.Lock()
			defer mu.Unlock()
			revoked = append(revoked, a)
			committedAtRevoke = c
		}))
	waitFor(t, 30*time.Second, "every record handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled == records
	})
	waitFor(t, 10*time.Second, "the handled offsets committed", func() bool {
		return committed(t, broker, group, topic, 0)[0] == records
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(assigned) == 0 || !slices.Equal(assigned[0][topic], []int{0}) {
		t.Errorf("assignments %v, want partition 0", assigned)
	}
	if len(revoked) != len(assigned) || !slices.Equal(revoked[len(revoked)-1][topic], []int{0}) {
		t.Errorf("revocations %v for assignments %v", revoked, assigned)
	}
	if committedAtRevoke[0] != records {
		t.Errorf("committed offset at revocation %v, want %d", committedAtRevoke, records)
	}
}
