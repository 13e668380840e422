package alerting_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

var acme = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantAdmin, Subject: "apikey:svc-acme"}

// sentSeries counts the notifications the running process delivered.
const sentSeries = `canopy_alerting_notifications_total{result="sent"}`

// recorder is a webhook receiver that answers 200, or 503 while failing
// (the notifications then stay queued and are retried), and records every
// notification it accepted.
type recorder struct {
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	// accepted counts the 200 answers per group (the payload's group
	// label); firing holds the alert ids seen firing in accepted ones.
	accepted map[string]int
	firing   map[string]bool
	refused  int
	since    int // 200 answers since the last reset (one process's life)
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{accepted: map[string]int{}, firing: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var m struct {
			GroupLabels map[string]string `json:"groupLabels"`
			Alerts      []struct {
				Status string            `json:"status"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.failing.Load() {
			r.refused++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.accepted[m.GroupLabels["group"]]++
		r.since++
		for _, a := range m.Alerts {
			if a.Status == "firing" {
				r.firing[a.Labels["id"]] = true
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// snapshot returns the groups accepted so far, the ids seen firing, the
// refusals and the 200s since the last restart.
func (r *recorder) snapshot() (groups map[string]int, firing map[string]bool, refused, since int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	groups, firing = make(map[string]int, len(r.accepted)), make(map[string]bool, len(r.firing))
	for k, v := range r.accepted {
		groups[k] = v
	}
	for k, v := range r.firing {
		firing[k] = v
	}
	return groups, firing, r.refused, r.since
}

func (r *recorder) restarted() {
	r.mu.Lock()
	r.since = 0
	r.mu.Unlock()
}

// push sends groups [from, to) of perGroup alerts each, as Prometheus
// pushes (no endsAt: they stay firing for the resolve timeout, 5m).
func push(t *testing.T, svc *svctest.Service, from, to, perGroup int) []string {
	t.Helper()
	var ids []string
	var batch []map[string]any
	for g := from; g < to; g++ {
		for i := 0; i < perGroup; i++ {
			id := fmt.Sprintf("g%d-a%d", g, i)
			ids = append(ids, id)
			batch = append(batch, map[string]any{
				"labels":      map[string]string{"alertname": "KillTest", "group": fmt.Sprintf("g%d", g), "id": id, "severity": "warning"},
				"annotations": map[string]string{"summary": "alert " + id},
				"startsAt":    time.Now().UTC().Format(time.RFC3339Nano),
			})
		}
	}
	if err := svc.Call(acme, http.MethodPost, "/api/v2/alerts", batch, nil); err != nil {
		t.Fatalf("push groups %d..%d: %v", from, to-1, err)
	}
	return ids
}

// settled waits until every 200 the receiver gave this process is counted
// as sent: its deliveries are marked delivered in MySQL, so no kill can
// make them be sent again.
func settled(t *testing.T, svc *svctest.Service, rec *recorder) {
	t.Helper()
	svctest.WaitFor(t, "the accepted notifications marked delivered", 30*time.Second, func() (bool, string) {
		sent, err := svc.Metric(sentSeries)
		if err != nil {
			return false, err.Error()
		}
		_, _, _, since := rec.snapshot()
		return int(sent) >= since, fmt.Sprintf("sent %v, receiver accepted %d", sent, since)
	})
}

// TestKilledMidGroupDeliversEveryAlertOnce pushes alerts in groups to a
// webhook receiver and SIGKILLs the service three times while some groups
// are still in their group_wait (only in the engine's memory) and others
// are flushed and queued but undelivered (the receiver answers 503). After
// each restart, every alert is delivered at least once; a group whose
// notification was delivered before a kill is never sent again (the
// notification log survives the restart; group_interval and
// repeat_interval are far longer than the test).
func TestKilledMidGroupDeliversEveryAlertOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("service-level crash test")
	}
	broker := svctest.StartKafka(t)
	svc := startService(t, broker, nil)
	rec := newRecorder(t)
	if err := svc.Call(acme, http.MethodPost, "/api/v1/alert-receivers", map[string]any{
		"name": "oncall", "url": rec.srv.URL, "group_by": []string{"group"}, "group_wait": "2s",
		"group_interval": "1h", "repeat_interval": "4h", "send_resolved": false}, nil); err != nil {
		t.Fatal(err)
	}

	const (
		perGroup = 5
		groups   = 10 // per phase
		kills    = 3
	)
	var all []string
	delivered := map[string]int{} // group → 200s when it was known delivered before a kill
	next := 0
	for k := 1; k <= kills; k++ {
		// Delivered: pushed, flushed after group_wait, accepted, marked.
		all = append(all, push(t, svc, next, next+groups, perGroup)...)
		first := next
		next += groups
		svctest.WaitFor(t, fmt.Sprintf("round %d: groups g%d..g%d delivered", k, first, next-1), time.Minute, func() (bool, string) {
			g, _, _, _ := rec.snapshot()
			for i := first; i < next; i++ {
				if g[fmt.Sprintf("g%d", i)] == 0 {
					return false, fmt.Sprintf("g%d not yet; %d groups accepted", i, len(g))
				}
			}
			return true, ""
		})
		settled(t, svc, rec)
		g, _, _, _ := rec.snapshot()
		for name, n := range g {
			delivered[name] = n
		}

		// Queued: flushed, the receiver refuses them.
		rec.failing.Store(true)
		_, _, refusedBefore, _ := rec.snapshot()
		all = append(all, push(t, svc, next, next+groups, perGroup)...)
		next += groups
		svctest.WaitFor(t, fmt.Sprintf("round %d: queued notifications attempted", k), time.Minute, func() (bool, string) {
			_, _, refused, _ := rec.snapshot()
			// A few: the receiver's circuit breaker opens after five
			// failures and holds the rest back without trying.
			return refused >= refusedBefore+3, fmt.Sprintf("%d refused", refused-refusedBefore)
		})

		// Pending: within group_wait, in memory only, when the kill comes.
		all = append(all, push(t, svc, next, next+groups, perGroup)...)
		next += groups
		svc.Kill()
		t.Logf("round %d: killed with %d groups pushed", k, next)

		rec.failing.Store(false)
		rec.restarted()
		svc.Restart(t)
	}

	// Every alert, delivered at least once.
	svctest.WaitFor(t, "every alert delivered firing at least once", 3*time.Minute, func() (bool, string) {
		_, firing, _, _ := rec.snapshot()
		var missing []string
		for _, id := range all {
			if !firing[id] {
				missing = append(missing, id)
			}
		}
		sort.Strings(missing)
		if len(missing) > 5 {
			missing = append(missing[:5], "…")
		}
		return len(missing) == 0, fmt.Sprintf("%d of %d missing: %s", len(missing), len(all), strings.Join(missing, " "))
	})
	// A last group, pushed after everything else: once it is delivered,
	// whatever the restart flushed before it has been sent (the queue is
	// oldest first) and would be counted below.
	push(t, svc, next, next+1, 1)
	svctest.WaitFor(t, "the last group delivered", time.Minute, func() (bool, string) {
		g, _, _, _ := rec.snapshot()
		return g[fmt.Sprintf("g%d", next)] > 0, "not yet"
	})
	settled(t, svc, rec)

	// No group delivered before a kill was sent again.
	g, _, _, _ := rec.snapshot()
	for name, n := range delivered {
		if g[name] != n {
			t.Errorf("group %s was delivered %d times before a kill and %d times in all: re-sent after a restart", name, n, g[name])
		}
	}
	// Nor any other: the receiver refused everything while each kill
	// came, so no delivery was accepted and left unmarked (the one case
	// at-least-once allows a second copy).
	for name, n := range g {
		if n != 1 {
			t.Errorf("group %s was delivered %d times, want once", name, n)
		}
	}
	t.Logf("%d alerts in %d groups, %d kills", len(all), next+1, kills)
}
