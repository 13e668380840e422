package monitor_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/fakenode"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/monitor"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/target"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/testproc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testproc.CleanupTemplate()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutine leak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// recorder is an in-test publisher that keeps what was published, with the
// time it arrived.
type recorder struct {
	mu  sync.Mutex
	evs []recorded
}

type recorded struct {
	topic string
	ev    monitor.Report
	at    time.Time
	data  events.NodeTransition
}

func (r *recorder) Publish(_ context.Context, topic string, evs ...monitor.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		rec := recorded{topic: topic, ev: e, at: time.Now()}
		if topic == events.TopicHealth {
			_ = json.Unmarshal(e.Data, &rec.data)
		}
		r.evs = append(r.evs, rec)
	}
	return nil
}

// transitions returns the health.node.* events for node.
func (r *recorder) transitions(node string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, e := range r.evs {
		if e.topic == events.TopicHealth && e.data.NodeID == node {
			out = append(out, e)
		}
	}
	return out
}

func (r *recorder) waitFor(t *testing.T, node, typ, reason string, within time.Duration) recorded {
	t.Helper()
	var got recorded
	require.Eventually(t, func() bool {
		for _, e := range r.transitions(node) {
			if e.ev.Type == typ && (reason == "" || e.data.Reason == reason) {
				got = e
				return true
			}
		}
		return false
	}, within, 5*time.Millisecond, "no %s (%s) for %s; have %+v", typ, reason, node, r.transitions(node))
	return got
}

func (r *recorder) count(node string) int { return len(r.transitions(node)) }

func startMonitor(t *testing.T, pub monitor.Publisher) *monitor.Monitor {
	t.Helper()
	prof, err := nettune.Default(nettune.SingleAZ)
	require.NoError(t, err)
	m, err := monitor.New(monitor.Config{Replica: "test", SampleInterval: 200 * time.Millisecond, Workers: 16}, pub,
		prof.Dialer.DialContext, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

var fast = target.Policy{Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Fall: 3, Rise: 2, SampleEvery: 1}

func redisTarget(id, instance, addr string, role target.Role) target.Target {
	return target.Target{NodeID: id, InstanceID: instance, Tenant: "acme", Engine: target.EngineRedis, Role: role, Address: addr,
		Monitor: target.Credentials{Username: testproc.MonitorUser, Password: testproc.MonitorPassword}, Policy: fast}
}

func TestRedisKillAndRestart(t *testing.T) {
	primary := testproc.StartRedis(t, "")
	replica := testproc.StartRedis(t, primary.Addr)
	rec := &recorder{}
	m := startMonitor(t, rec)
	require.NoError(t, m.Upsert(redisTarget("p", "inst-1", primary.Addr, target.RolePrimary)))
	require.NoError(t, m.Upsert(redisTarget("r", "inst-1", replica.Addr, target.RoleReplica)))

	rec.waitFor(t, "p", events.TypeNodeUp, "", 5*time.Second)
	rec.waitFor(t, "r", events.TypeNodeUp, "", 10*time.Second)

	// kill -9 the primary: down within interval × fall + timeout + slack.
	killed := time.Now()
	primary.Kill()
	down := rec.waitFor(t, "p", events.TypeNodeDown, "", 5*time.Second)
	took := down.at.Sub(killed)
	bound := fast.WithDefaults().DetectionTime() + 250*time.Millisecond
	t.Logf("kill -9 → health.node.down in %s (bound %s), reason %s", took, bound, down.data.Reason)
	require.LessOrEqual(t, took, bound)
	require.Equal(t, "refused", down.data.Reason)
	require.Equal(t, "acme", down.ev.Tenant)
	require.Equal(t, "inst-1", down.ev.InstanceID)

	// Its replica loses the link: degraded replication_stopped.
	deg := rec.waitFor(t, "r", events.TypeNodeDegraded, "replication_stopped", 10*time.Second)
	require.NotNil(t, deg.data.Evidence.Replication)

	// Restart: up after rise successes.
	restarted := time.Now()
	primary.Start()
	var up recorded
	require.Eventually(t, func() bool {
		ups := 0
		for _, e := range rec.transitions("p") {
			if e.ev.Type == events.TypeNodeUp {
				ups++
				up = e
			}
		}
		return ups == 2
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, "down", up.data.PreviousStatus)
	t.Logf("restart → health.node.up in %s", up.at.Sub(restarted))
	require.LessOrEqual(t, up.at.Sub(restarted), time.Duration(fast.Rise+1)*fast.Interval+fast.Timeout)
	rec.waitFor(t, "r", events.TypeNodeUp, "", 10*time.Second)

	view := m.Instance("inst-1")
	require.Len(t, view, 2)
	require.Equal(t, "up", string(view[0].Status))
	require.NotEmpty(t, view[0].Sample)

	// Steady state publishes nothing more.
	n := rec.count("p")
	require.Never(t, func() bool { return rec.count("p") != n }, 1500*time.Millisecond, 50*time.Millisecond)

	// Samples went out in batches keyed by instance.
	rec.mu.Lock()
	var batch events.SampleBatch
	for _, e := range rec.evs {
		if e.topic == events.TopicSamples {
			require.NoError(t, json.Unmarshal(e.ev.Data, &batch))
		}
	}
	rec.mu.Unlock()
	require.Equal(t, "inst-1", batch.InstanceID)
	require.NotEmpty(t, batch.Nodes)
	// What metering counts travels in the batch: traffic and operation
	// counters with the uptime that tells a restart, and used storage.
	for _, n := range batch.Nodes {
		for _, k := range []string{"net_in_bytes_total", "net_out_bytes_total", "commands_total", "uptime_seconds",
			"storage_used_bytes", "connected_clients"} {
			require.Contains(t, n.Metrics, k, "node %s", n.NodeID)
		}
	}
}

func TestFaultyTargetsDoNotDisturbOthers(t *testing.T) {
	rec := &recorder{}
	m := startMonitor(t, rec)
	addrs := map[string]string{}
	for name, kind := range map[string]fakenode.Kind{"good": fakenode.RESP, "hole": fakenode.Blackhole, "junk": fakenode.Garbage} {
		s, err := fakenode.Listen(kind, "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		addrs[name] = s.Addr()
	}
	for name, addr := range addrs {
		tg := redisTarget(name, "inst-"+name, addr, target.RolePrimary)
		require.NoError(t, m.Upsert(tg))
	}
	require.Equal(t, "timeout", rec.waitFor(t, "hole", events.TypeNodeDown, "", 5*time.Second).data.Reason)
	require.Equal(t, "protocol_error", rec.waitFor(t, "junk", events.TypeNodeDown, "", 5*time.Second).data.Reason)
	rec.waitFor(t, "good", events.TypeNodeUp, "", 5*time.Second)
	require.Never(t, func() bool { return rec.count("good") != 1 }, time.Second, 50*time.Millisecond, "the good target never flaps")
	for _, v := range m.All() {
		if v.NodeID == "good" {
			require.WithinDuration(t, time.Now(), v.LastProbeAt, 2*fast.Interval, "still probed on time")
		}
	}
}

func TestHandOverDoesNotRepublish(t *testing.T) {
	s, err := fakenode.Listen(fakenode.RESP, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	rec := &recorder{}
	m := startMonitor(t, rec)
	m.SeedPublished("n1", "up", "")
	m.SeedPublished("n2", "down", "refused")
	require.NoError(t, m.Upsert(redisTarget("n1", "i", s.Addr(), target.RolePrimary)))
	require.NoError(t, m.Upsert(redisTarget("n2", "i", s.Addr(), target.RolePrimary)))
	// n2 was last published down and is up now: a real transition.
	up := rec.waitFor(t, "n2", events.TypeNodeUp, "", 5*time.Second)
	require.Equal(t, "unknown", up.data.PreviousStatus)
	require.Never(t, func() bool { return rec.count("n1") != 0 }, time.Second, 50*time.Millisecond,
		"n1 was already published up: no duplicate")
	require.Equal(t, "up", string(m.Instance("i")[0].Status))
}

func TestMariaDBReplicaDegradations(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mariadbd")
	}
	primary := testproc.StartMariaDB(t, 11)
	replica := testproc.StartMariaDB(t, 12)
	replica.ReplicateFrom(t, primary)
	rec := &recorder{}
	m := startMonitor(t, rec)
	mk := func(id, addr string, role target.Role) target.Target {
		return target.Target{NodeID: id, InstanceID: "db-1", Tenant: "acme", Engine: target.EngineMySQL, Role: role, Address: addr,
			Monitor: target.Credentials{Username: testproc.MonitorUser, Password: testproc.MonitorPassword}, Policy: fast}
	}
	require.NoError(t, m.Upsert(mk("db-p", primary.Addr, target.RolePrimary)))
	require.NoError(t, m.Upsert(mk("db-r", replica.Addr, target.RoleReplica)))
	rec.waitFor(t, "db-p", events.TypeNodeUp, "", 5*time.Second)
	rec.waitFor(t, "db-r", events.TypeNodeUp, "", 5*time.Second)

	replica.Exec(t, "STOP SLAVE")
	ev := rec.waitFor(t, "db-r", events.TypeNodeDegraded, "replication_stopped", 5*time.Second)
	require.False(t, ev.data.Evidence.Replication.IORunning)

	replica.Exec(t, "START SLAVE")
	rec.waitFor(t, "db-r", events.TypeNodeUp, "", 10*time.Second)
	ups := len(rec.transitions("db-r"))

	replica.Exec(t, "SET GLOBAL read_only=OFF")
	ev = rec.waitFor(t, "db-r", events.TypeNodeDegraded, "not_read_only", 5*time.Second)
	require.False(t, *ev.data.Evidence.ReadOnly)
	require.Greater(t, len(rec.transitions("db-r")), ups)

	// kill -9 the primary: down within the detection bound.
	killed := time.Now()
	primary.Kill()
	down := rec.waitFor(t, "db-p", events.TypeNodeDown, "", 5*time.Second)
	require.LessOrEqual(t, down.at.Sub(killed), fast.WithDefaults().DetectionTime()+250*time.Millisecond)
}
