package cdc_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/svctest"
)

// seededRand returns a goroutine-safe rand seeded from CDC_TEST_SEED or the
// clock, logging the seed so a failing run can be replayed.
func seededRand(t *testing.T) func(n int) int {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CDC_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CDC_TEST_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (CDC_TEST_SEED to replay)", seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var mu sync.Mutex
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return r.IntN(n)
	}
}

// TestKillAtRandomPoints kills the cdc service with SIGKILL once during
// its initial snapshot and then at random points of a write load (≥ 10
// times), restarting it each time: at the end the topic's last value per
// key equals the table, no row missing; duplicates are allowed
// (at-least-once) and counted. The cdc.stream.usage events add up to the
// distinct rows the topic carried: a row re-published after a kill is
// billed once, and none is lost with a killed process.
func TestKillAtRandomPoints(t *testing.T) {
	rnd := seededRand(t)
	primary, replica := startPair(t)
	broker := startKafka(t)
	const instance = "inst-crash"
	prov := startProvisioning(t, instance)
	prov.set(viewNode(primary, "primary", true), viewNode(replica, "replica", true))
	createTable(t, primary.root, "t")
	const seeded = 50000
	seed(t, primary.root, "t", seeded)
	svctest.WaitFor(t, "replica has the seed", 30*time.Second, func() (bool, string) { return caughtUp(primary, replica) })

	svc := startService(t, prov, broker, map[string]string{"CANOPY_CDC_SNAPSHOT_CHUNK": "200", "CANOPY_CDC_MAX_BATCH": "200",
		"CANOPY_CDC_USAGE_EVERY": "300ms"})
	view := followTopic(t, broker, "cdc."+tenantID+"."+instance+".app.t")
	usage := followUsage(t, broker)
	w := startWriter(writerDB(t, primary), "t", seeded, rnd)
	t.Cleanup(w.stop)
	st := svc.createStream(t, instance, map[string]any{"tables": []string{"app.t"}, "snapshot": "initial"})

	// Restart after a kill and wait for the new process to publish: the
	// topic grows past what it held at the kill.
	kills := 0
	killAndRestart := func(why string) {
		t.Helper()
		at := view.count()
		svc.Kill()
		kills++
		svc.Restart(t)
		svctest.WaitFor(t, fmt.Sprintf("progress after kill %d (%s)", kills, why), 30*time.Second, func() (bool, string) {
			s, err := svc.stream(instance, st.ID)
			c, f := w.stats()
			return view.count() > at, fmt.Sprintf("topic %d messages (at kill %d), stream %+v %v, writer %d/%d failed", view.count(), at, s, err, c, f)
		})
	}

	// Kill 1: mid-snapshot, a few chunks in (the API's count, not the
	// view's: the view may trail the service).
	killAfter := int64(1000 + rnd(4000))
	svctest.WaitFor(t, "snapshot under way", 30*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		if err == nil && s.State != "snapshotting" && s.State != "" {
			t.Fatalf("snapshot over (%+v) before the mid-snapshot kill: make it slower", s)
		}
		return err == nil && s.EventsTotal >= killAfter, fmt.Sprintf("%+v %v", s, err)
	})
	killAndRestart("mid-snapshot")
	svctest.WaitFor(t, "snapshot finished after the restart", 40*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && s.State == "streaming", fmt.Sprintf("%+v %v", s, err)
	})

	// Kills 2..11 at random points of the streaming under load.
	for kills < 11 {
		delay := time.Duration(rnd(1500)) * time.Millisecond
		time.Sleep(delay) // the random kill point itself, not a wait for a condition
		killAndRestart("streaming, after " + delay.String())
	}
	w.stop()
	committed, failed := w.stats()
	start := time.Now()
	// The stream reads the replica: its view can be no newer than it.
	svctest.WaitFor(t, "replica caught up after the load", 60*time.Second, func() (bool, string) { return caughtUp(primary, replica) })
	t.Logf("replica caught up %s after the load stopped", time.Since(start).Round(time.Millisecond))
	waitConverged(t, view, primary.root, "t", 45*time.Second, streamState(svc, instance, st.ID))
	var reported int64
	var reports int
	svctest.WaitFor(t, "usage events add up to the distinct rows published", 30*time.Second, func() (bool, string) {
		var err error
		reported, reports, err = usage.total(st.ID)
		if err != nil {
			t.Fatalf("usage events: %v", err)
		}
		return reported == view.distinct(), fmt.Sprintf("usage %d rows in %d events, topic %d distinct rows (%d messages)",
			reported, reports, view.distinct(), view.count())
	})
	t.Logf("usage: %d rows in %d cdc.stream.usage events", reported, reports)
	view.mu.Lock()
	t.Logf("kills %d; writer %d transactions committed (%d failed); topic %d messages %v; duplicates: %d changes (same gtid/row), %d snapshot rows read twice; converged %s after the load stopped",
		kills, committed, failed, view.msgs, view.opCount, view.dups, view.snapDups, time.Since(start).Round(time.Millisecond))
	view.mu.Unlock()
}

// midStream is a stream reading the replica of a primary/replica pair
// while a writer writes on the primary.
type midStream struct {
	primary, replica *mnode
	broker, instance string
	prov             *provStandIn
	svc              *service
	view             *topicView
	w                *writer
	st               streamJSON
}

func streamingFromReplica(t *testing.T, instance string) midStream {
	t.Helper()
	m := midStream{instance: instance}
	rnd := seededRand(t)
	m.primary, m.replica = startPair(t)
	m.broker = startKafka(t)
	m.prov = startProvisioning(t, instance)
	m.prov.set(viewNode(m.primary, "primary", true), viewNode(m.replica, "replica", true))
	createTable(t, m.primary.root, "t")
	seed(t, m.primary.root, "t", 1000)
	m.svc = startService(t, m.prov, m.broker, nil)
	m.view = followTopic(t, m.broker, "cdc."+tenantID+"."+instance+".app.t")
	m.w = startWriter(writerDB(t, m.primary), "t", 1000, rnd)
	t.Cleanup(m.w.stop)
	m.st = m.svc.createStream(t, instance, map[string]any{"tables": []string{"app.t"}, "snapshot": "initial"})
	svctest.WaitFor(t, "streaming from the replica", 30*time.Second, func() (bool, string) {
		s, err := m.svc.stream(instance, m.st.ID)
		return err == nil && s.State == "streaming" && s.SourceNode == m.replica.id && m.view.ops()["c"] > 50,
			fmt.Sprintf("%+v %v, %d messages", s, err, m.view.count())
	})
	return m
}

// TestFailoverMidStream: the instance's nodes change under a running
// stream while a writer writes, and the topic still ends equal to the
// table, without a gap.
func TestFailoverMidStream(t *testing.T) {
	t.Run("primary dies, replica promoted", func(t *testing.T) {
		m := streamingFromReplica(t, "inst-failover")
		primary, replica, broker, prov, svc, view, w, st, instance := m.primary, m.replica, m.broker, m.prov, m.svc, m.view, m.w, m.st, m.instance

		primary.proc.Kill()
		execAll(t, replica.root, "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only=0")
		prov.set(provNode{ID: primary.id, Address: primary.proc.Addr, Role: "fenced", Region: "local", RegionRole: "primary"},
			viewNode(replica, "primary", true))
		publishFailover(t, broker, instance, replica.id)
		before, _ := w.stats()
		w.setDB(writerDB(t, replica))
		at := view.count()
		svctest.WaitFor(t, "writes on the new primary reach the topic", 30*time.Second, func() (bool, string) {
			c, _ := w.stats()
			s, err := svc.stream(instance, st.ID)
			return c > before+100 && view.count() > at+100, fmt.Sprintf("writer %d (at failover %d), topic %d (at failover %d), stream %+v %v", c, before, view.count(), at, s, err)
		})
		w.stop()
		waitConverged(t, view, replica.root, "t", 30*time.Second, streamState(svc, instance, st.ID))
		s, _ := svc.stream(instance, st.ID)
		c, f := w.stats()
		t.Logf("writer %d committed (%d failed); topic %d messages, %d duplicate changes; stream %s on %s at %s",
			c, f, view.count(), view.dupCount(), s.State, s.SourceNode, s.Position.GTID)
	})

	t.Run("source replica dies", func(t *testing.T) {
		m := streamingFromReplica(t, "inst-replica-dies")
		primary, replica, broker, prov, svc, view, w, st, instance := m.primary, m.replica, m.broker, m.prov, m.svc, m.view, m.w, m.st, m.instance
		// Provisioning has not noticed yet: the view still says healthy.
		replica.proc.Kill()
		at := view.count()
		svctest.WaitFor(t, "streaming from the primary", 30*time.Second, func() (bool, string) {
			s, err := svc.stream(instance, st.ID)
			return err == nil && s.State == "streaming" && s.SourceNode == primary.id && view.count() > at+100,
				fmt.Sprintf("%+v %v, topic %d (at kill %d)", s, err, view.count(), at)
		})

		// The replica comes back behind the stream's checkpoint (its
		// replication not started yet) and is reported healthy again:
		// the stream may prefer it, but must not fail on a replica that
		// merely lags (MariaDB answers 1236 for a GTID it does not have
		// yet), nor skip anything.
		replica.proc.Start()
		prov.set(viewNode(primary, "primary", true), viewNode(replica, "replica", true))
		publishRejoined(t, broker, instance, replica.id, primary.id)
		at = view.count()
		svctest.WaitFor(t, "streaming on while the replica lags", 30*time.Second, func() (bool, string) {
			s, err := svc.stream(instance, st.ID)
			return err == nil && s.State == "streaming" && view.count() > at+100,
				fmt.Sprintf("%+v %v, topic %d (at rejoin %d)", s, err, view.count(), at)
		})
		execAll(t, replica.root, "START SLAVE")
		w.stop()
		svctest.WaitFor(t, "replica caught up", 30*time.Second, func() (bool, string) { return caughtUp(primary, replica) })
		waitConverged(t, view, primary.root, "t", 30*time.Second, streamState(svc, instance, st.ID))
		s, _ := svc.stream(instance, st.ID)
		c, f := w.stats()
		t.Logf("writer %d committed (%d failed); topic %d messages, %d duplicate changes; stream %s on %s",
			c, f, view.count(), view.dupCount(), s.State, s.SourceNode)
	})
}

// TestStalledReplicaShowsLag: the replica the stream reads stops applying
// (its replication broke) while the primary takes writes. The stream
// cannot see those writes there; it must at least not look caught up: its
// lag counts the primary's transactions it has not delivered.
func TestStalledReplicaShowsLagThenIsLeft(t *testing.T) {
	primary, replica := startPair(t)
	broker := startKafka(t)
	const instance = "inst-stalled"
	prov := startProvisioning(t, instance)
	prov.set(viewNode(primary, "primary", true), viewNode(replica, "replica", true))
	createTable(t, primary.root, "t")
	svc := startService(t, prov, broker, map[string]string{"CANOPY_CDC_STALL_AFTER": "6s"})
	view := followTopic(t, broker, "cdc."+tenantID+"."+instance+".app.t")
	st := svc.createStream(t, instance, map[string]any{"tables": []string{"app.t"}, "snapshot": "initial"})
	execAll(t, primary.root, "INSERT INTO app.t VALUES (0, 'a', 0)")
	svctest.WaitFor(t, "streaming from the replica", 30*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && s.State == "streaming" && s.SourceNode == replica.id && view.count() == 1, fmt.Sprintf("%+v %v", s, err)
	})
	// Replication breaks on the replica being read (provisioning still
	// calls it healthy): the stall shows as lag against the primary, then
	// the stream leaves the replica and catches up from the primary.
	execAll(t, replica.root, "STOP SLAVE")
	t.Cleanup(func() { execAll(t, replica.root, "START SLAVE") })
	for i := 1; i <= 50; i++ {
		execAll(t, primary.root, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'a', 0)", i))
	}
	svctest.WaitFor(t, "the stall shows as lag", 20*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && s.Lag.Events >= 50, fmt.Sprintf("%+v %v", s, err)
	})
	svctest.WaitFor(t, "the stream to leave the stalled replica", 30*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && s.SourceNode == primary.id, fmt.Sprintf("%+v %v", s, err)
	})
	waitConverged(t, view, primary.root, "t", 30*time.Second, streamState(svc, instance, st.ID))
	svctest.WaitFor(t, "lag back to zero", 20*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && s.Lag.Events == 0, fmt.Sprintf("%+v %v", s, err)
	})
}

// publishFailover publishes failover.completed naming the new primary on
// canopy.failover.v1, as the failover service does.
func publishFailover(t *testing.T, broker, instance, newPrimary string) {
	t.Helper()
	publishRecovery(t, broker, instance, events.TypeFailoverCompleted, events.Recovery{RecoveryID: "rec-1",
		InstanceID: instance, TenantID: tenantID, State: "completed", NewPrimary: newPrimary})
}

// publishRejoined publishes node.rejoined, as failover does when a node
// is back as a replica.
func publishRejoined(t *testing.T, broker, instance, node, primary string) {
	t.Helper()
	publishRecovery(t, broker, instance, events.TypeNodeRejoined, events.NodeRejoined{InstanceID: instance,
		TenantID: tenantID, NodeID: node, Primary: primary})
}

// publishRecovery publishes one event of the instance on canopy.failover.v1.
func publishRecovery(t *testing.T, broker, instance, typ string, payload any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, err := eventbus.NewPublisher(eventbus.PublisherConfig{Brokers: []string{broker}, Source: "/test"}, nopLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ev, err := eventbus.NewEvent(typ, "/test", instance, payload)
	if err != nil {
		t.Fatal(err)
	}
	ev.Tenant = tenantID
	if err := pub.Publish(ctx, events.TopicFailover, ev); err != nil {
		t.Fatal(err)
	}
}

// TestPoisonStopsLoudly: a row of a type capture cannot decode (POINT)
// fails the stream with the table and column in last_error; the checkpoint
// stays before the poison, so rows of other tables after it are not
// skipped (they are not published past it), also across a restart.
func TestPoisonStopsLoudly(t *testing.T) {
	primary, replica := startPair(t)
	broker := startKafka(t)
	const instance = "inst-poison"
	prov := startProvisioning(t, instance)
	prov.set(viewNode(primary, "primary", true), viewNode(replica, "replica", true))
	createTable(t, primary.root, "t")
	execAll(t, primary.root, "CREATE TABLE app.geo (id BIGINT PRIMARY KEY, shape POINT NOT NULL) ENGINE=InnoDB")
	svc := startService(t, prov, broker, nil)
	view := followTopic(t, broker, "cdc."+tenantID+"."+instance+".app.t")
	st := svc.createStream(t, instance, map[string]any{"tables": []string{"app.*"}, "snapshot": "never"})
	svctest.WaitFor(t, "streaming", 30*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && s.State == "streaming" && s.Position.GTID != "", fmt.Sprintf("%+v %v", s, err)
	})
	for i := range 10 {
		execAll(t, primary.root, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'before', 0)", i))
	}
	svctest.WaitFor(t, "rows before the poison published", 30*time.Second, func() (bool, string) {
		rows, _ := view.snapshot()
		return len(rows) == 10, fmt.Sprintf("%d rows", len(rows))
	})
	execAll(t, primary.root, "INSERT INTO app.geo VALUES (1, POINT(1, 2))")
	poison := gtidPos(t, primary.root)
	for i := 10; i < 20; i++ {
		execAll(t, primary.root, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'after', 0)", i))
	}
	check := func(when string) {
		t.Helper()
		var s streamJSON
		svctest.WaitFor(t, "stream failed "+when, 30*time.Second, func() (bool, string) {
			var err error
			s, err = svc.stream(instance, st.ID)
			return err == nil && s.State == "failed", fmt.Sprintf("%+v %v", s, err)
		})
		if !strings.Contains(s.LastError, "app.geo") || !strings.Contains(s.LastError, "shape") {
			t.Errorf("%s: last_error %q does not name app.geo and its column shape", when, s.LastError)
		}
		if seqOf(t, s.Position.GTID) >= seqOf(t, poison) {
			t.Errorf("%s: checkpoint %s at or past the poison %s", when, s.Position.GTID, poison)
		}
		rows, err := view.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		for id := 10; id < 20; id++ {
			if _, ok := rows[strconv.Itoa(id)]; ok {
				t.Errorf("%s: row %d, written after the poison, published past it", when, id)
			}
		}
		t.Logf("%s: state %s at %s (poison %s): %s", when, s.State, s.Position.GTID, poison, s.LastError)
	}
	check("at first")
	svc.Kill()
	svc.Restart(t)
	check("after a restart")
}

// gtidPos is the node's gtid_binlog_pos (one domain in these tests).
func gtidPos(t *testing.T, db *sql.DB) string {
	t.Helper()
	var p string
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// seqOf is the sequence number of a single-domain GTID position "0-1-42".
func seqOf(t *testing.T, pos string) uint64 {
	t.Helper()
	f := strings.Split(pos, "-")
	if len(f) != 3 {
		t.Fatalf("position %q: want one domain-server-seq", pos)
	}
	n, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		t.Fatalf("position %q: %v", pos, err)
	}
	return n
}

// streamState describes the stream for failure messages.
func streamState(svc *service, instance, id string) func() string {
	return func() string {
		s, err := svc.stream(instance, id)
		return fmt.Sprintf("stream %+v %v", s, err)
	}
}

// TestFailoverAheadOfNewPrimary: the stream reads the primary (its replica
// reported unhealthy), the replica misses the primary's last transactions
// (replication stopped), the primary dies and the replica is promoted: the
// stream's checkpoint names GTIDs the new primary never had. What it does
// then is logged; it must not sit "streaming" while missing the new
// primary's writes.
func TestFailoverAheadOfNewPrimary(t *testing.T) {
	primary, replica := startPair(t)
	broker := startKafka(t)
	const instance = "inst-ahead"
	prov := startProvisioning(t, instance)
	prov.set(viewNode(primary, "primary", true), viewNode(replica, "replica", false))
	createTable(t, primary.root, "t")
	seed(t, primary.root, "t", 100)
	svctest.WaitFor(t, "replica has the seed", 30*time.Second, func() (bool, string) { return caughtUp(primary, replica) })
	svc := startService(t, prov, broker, nil)
	view := followTopic(t, broker, "cdc."+tenantID+"."+instance+".app.t")
	st := svc.createStream(t, instance, map[string]any{"tables": []string{"app.t"}, "snapshot": "initial"})
	execAll(t, replica.root, "STOP SLAVE")
	for i := 100; i < 110; i++ {
		execAll(t, primary.root, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'lost', 0)", i))
	}
	lost := gtidPos(t, primary.root)
	svctest.WaitFor(t, "stream at the primary's end", 30*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && s.Position.GTID == lost && s.SourceNode == primary.id, fmt.Sprintf("%+v %v (want %s)", s, err, lost)
	})
	primary.proc.Kill()
	execAll(t, replica.root, "RESET SLAVE ALL", "SET GLOBAL read_only=0")
	prov.set(provNode{ID: primary.id, Address: primary.proc.Addr, Role: "fenced", Region: "local", RegionRole: "primary"},
		viewNode(replica, "primary", true))
	publishFailover(t, broker, instance, replica.id)
	// First the stream meets the new primary before it wrote anything:
	// the checkpoint is beyond its binlog's end.
	svctest.WaitFor(t, "stream on the new primary or failed", 30*time.Second, func() (bool, string) {
		s, err := svc.stream(instance, st.ID)
		return err == nil && (s.State == "failed" || s.SourceNode == replica.id), fmt.Sprintf("%+v %v", s, err)
	})
	if s, err := svc.stream(instance, st.ID); err == nil {
		t.Logf("before writes on the new primary: %s on %s, %q", s.State, s.SourceNode, s.LastError)
	}
	for i := 200; i < 210; i++ {
		execAll(t, replica.root, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'new', 0)", i))
	}
	t.Logf("new primary at %s, stream checkpoint %s", gtidPos(t, replica.root), lost)
	var s streamJSON
	svctest.WaitFor(t, "stream fails loudly or carries the new primary's writes", 30*time.Second, func() (bool, string) {
		var err error
		s, err = svc.stream(instance, st.ID)
		rows, _ := view.snapshot()
		_, has := rows["209"]
		return err == nil && (s.State == "failed" || has), fmt.Sprintf("%+v %v, topic has the new writes: %v", s, err, has)
	})
	t.Logf("stream %s on %s at %s: %s", s.State, s.SourceNode, s.Position.GTID, s.LastError)
	// The new primary cannot serve from a GTID it never had (MariaDB: error
	// 1236); the published "lost" rows cannot be taken back, so the stream
	// must stop and say so, naming the position, not claim a purge.
	if s.State != "failed" || !strings.Contains(s.LastError, lost) || !strings.Contains(s.LastError, "1236") ||
		!strings.Contains(s.LastError, ":resnapshot") {
		t.Errorf("stream %s: %q; want failed naming %s, the server's error 1236 and the re-snapshot", s.State, s.LastError, lost)
	}
}
