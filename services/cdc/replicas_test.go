package cdc_test

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/svctest"
)

// startStandby starts a second cdc replica on database, the way startService
// starts the first, but waits only until it listens: a standby is never
// ready while another replica holds the active lock.
func startStandby(t *testing.T, prov *provStandIn, broker, database string) *enginetest.Proc {
	t.Helper()
	env := map[string]string{
		"CANOPY_MYSQL_DSN":            storetest.DSN(),
		"CANOPY_CDC_DATABASE":         database,
		"CANOPY_CDC_PROVISIONING_URL": prov.srv.URL,
		"CANOPY_KAFKA_BROKERS":        broker,
		"CANOPY_INTERNAL_SECRET":      secret,
		"CANOPY_CDC_STATUS_INTERVAL":  "200ms",
	}
	p := enginetest.New(t, "env", func(p *enginetest.Proc, _ bool) []string {
		args := make([]string, 0, len(env)+2)
		for k, v := range env {
			args = append(args, k+"="+v)
		}
		sort.Strings(args)
		return append(args, "CANOPY_CDC_ADDR="+p.Addr, cdcBinary)
	}, nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("standby log tail:\n%s", p.Tail())
		}
	})
	p.Start()
	return p
}

// readyz answers GET /readyz of addr: its status and body.
func readyz(addr string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTwoReplicasOneActive: two cdc replicas on one database. Only the one
// holding the active lock reads the stream's binlog (no change is published
// twice while both run, though the second one starts with the stream
// already stored), the other is not ready and says it is a standby; when
// the active one is SIGKILLed the standby takes over, turns ready and
// resumes the stream from the stored checkpoint, and the topic ends equal
// to the table: no gap.
func TestTwoReplicasOneActive(t *testing.T) {
	rnd := seededRand(t)
	primary, replica := startPair(t)
	broker := startKafka(t)
	const instance = "inst-two"
	prov := startProvisioning(t, instance)
	prov.set(viewNode(primary, "primary", true), viewNode(replica, "replica", true))
	createTable(t, primary.root, "t")
	seed(t, primary.root, "t", 1000)
	database := storetest.NewConfig(t, "cdc_two").Database

	a := startService(t, prov, broker, map[string]string{"CANOPY_CDC_DATABASE": database})
	view := followTopic(t, broker, "cdc."+tenantID+"."+instance+".app.t")
	w := startWriter(writerDB(t, primary), "t", 1000, rnd)
	t.Cleanup(w.stop)
	st := a.createStream(t, instance, map[string]any{"tables": []string{"app.t"}, "snapshot": "initial"})
	svctest.WaitFor(t, "streaming", 30*time.Second, func() (bool, string) {
		s, err := a.stream(instance, st.ID)
		return err == nil && s.State == "streaming" && view.ops()["c"] > 50, fmt.Sprintf("%+v %v, %d messages", s, err, view.count())
	})

	// The second replica finds the stream stored, yet reads nothing: it
	// waits for the lock, unready, while the first one keeps publishing.
	b := startStandby(t, prov, broker, database)
	at := view.count()
	svctest.WaitFor(t, "the active replica publishing with the standby up", 30*time.Second, func() (bool, string) {
		code, body := readyz(b.Addr)
		if code == http.StatusOK {
			t.Fatalf("standby ready while the active replica runs: %s", body)
		}
		return view.count() > at+200 && code == http.StatusServiceUnavailable && strings.Contains(body, "standby"),
			fmt.Sprintf("topic %d messages (%d at standby start), standby /readyz %d %s", view.count(), at, code, body)
	})
	if d := view.dupCount(); d != 0 {
		t.Fatalf("%d changes published twice while both replicas ran", d)
	}

	// The active replica dies; the standby takes over.
	killed := time.Now()
	a.Kill()
	at = view.count()
	svctest.WaitFor(t, "standby ready", 30*time.Second, func() (bool, string) {
		code, body := readyz(b.Addr)
		return code == http.StatusOK, fmt.Sprintf("/readyz %d %s", code, body)
	})
	ready := time.Since(killed)
	svctest.WaitFor(t, "the new active replica publishing", 30*time.Second, func() (bool, string) {
		return view.count() > at, fmt.Sprintf("topic %d messages (%d at the kill)", view.count(), at)
	})
	publishing := time.Since(killed)

	w.stop()
	committed, failed := w.stats()
	svctest.WaitFor(t, "replica caught up after the load", 60*time.Second, func() (bool, string) { return caughtUp(primary, replica) })
	waitConverged(t, view, primary.root, "t", 45*time.Second, func() string { return fmt.Sprintf("topic %d messages", view.count()) })
	t.Logf("takeover after SIGKILL of the active replica: standby ready in %s, publishing in %s; writer %d transactions (%d failed); topic %d messages, %d changes published twice (at-least-once across the kill)",
		ready.Round(time.Millisecond), publishing.Round(time.Millisecond), committed, failed, view.count(), view.dupCount())
}
