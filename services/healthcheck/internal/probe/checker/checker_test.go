package checker_test

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/fakenode"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe/checker"
	"github.com/canopy-platform/canopy/services/healthcheck/internal/testproc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testproc.CleanupTemplate()
	if code == 0 {
		// A connection on which go-sql-driver/mysql panicked (fuzzed server
		// replies; see mysqlChecker.safeCheck) keeps its watcher goroutine.
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/go-sql-driver/mysql.(*mysqlConn).startWatcher.func1")); err != nil {
			os.Stderr.WriteString("goroutine leak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func dialer() probe.Dialer {
	p, err := nettune.Default(nettune.SingleAZ)
	if err != nil {
		panic(err)
	}
	return p.Dialer.DialContext
}

func listen(t *testing.T, kind fakenode.Kind) string {
	t.Helper()
	s, err := fakenode.Listen(kind, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

func check(t *testing.T, c probe.Checker, timeout time.Duration, sample bool) probe.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Check(ctx, sample)
}

func newChecker(t *testing.T, spec probe.Spec) probe.Checker {
	t.Helper()
	c, err := checker.New(spec, dialer())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFaultsGiveTheirReason(t *testing.T) {
	closedPort := testproc.FreePort(t) // nothing listens there any more
	cases := []struct {
		name   string
		engine probe.Engine
		addr   string
		want   probe.Reason
	}{
		{"redis on a blackhole", probe.EngineRedis, listen(t, fakenode.Blackhole), probe.ReasonTimeout},
		{"redis on garbage", probe.EngineRedis, listen(t, fakenode.Garbage), probe.ReasonProtocol},
		{"redis on a reset", probe.EngineRedis, listen(t, fakenode.Reset), probe.ReasonReset},
		{"redis refused", probe.EngineRedis, "127.0.0.1:" + itoa(closedPort), probe.ReasonRefused},
		{"mysql on a blackhole", probe.EngineMySQL, listen(t, fakenode.Blackhole), probe.ReasonTimeout},
		{"mysql on garbage", probe.EngineMySQL, listen(t, fakenode.Garbage), probe.ReasonProtocol},
		{"mysql refused", probe.EngineMySQL, "127.0.0.1:" + itoa(closedPort), probe.ReasonRefused},
		{"tcp refused", probe.EngineTCP, "127.0.0.1:" + itoa(closedPort), probe.ReasonRefused},
		{"tcp on a blackhole connects", probe.EngineTCP, listen(t, fakenode.Blackhole), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker(t, probe.Spec{Engine: tc.engine, Address: tc.addr, Username: "u", Password: "p"})
			start := time.Now()
			res := check(t, c, 300*time.Millisecond, false)
			if tc.want == "" {
				require.True(t, res.OK, res.Detail)
				return
			}
			require.False(t, res.OK, "detail %s", res.Detail)
			if tc.name == "redis on a reset" && res.Reason == probe.ReasonClosed {
				// A reset that lands before the request is written reads as EOF.
				res.Reason = probe.ReasonReset
			}
			require.Equal(t, tc.want, res.Reason, "detail: %s", res.Detail)
			require.NotEmpty(t, res.Detail)
			require.Less(t, time.Since(start), 2*time.Second, "a probe must end near its timeout")
		})
	}
}

func TestFakeRESP(t *testing.T) {
	c := newChecker(t, probe.Spec{Engine: probe.EngineRedis, Address: listen(t, fakenode.RESP), Username: "m", Password: "p"})
	res := check(t, c, time.Second, true)
	require.True(t, res.OK, res.Detail)
	require.False(t, res.Reused)
	require.Equal(t, probe.RolePrimary, res.Observation.Role)
	require.Equal(t, int64(42), res.Sample["ops_per_sec"])
	require.Equal(t, int64(1048576), res.Sample["used_memory"])
	require.Equal(t, int64(1048576), res.Sample["storage_used_bytes"], "Redis's storage is its memory")
	require.Equal(t, int64(5000), res.Sample["net_in_bytes_total"])
	require.Equal(t, int64(70000), res.Sample["net_out_bytes_total"])
	require.Equal(t, int64(3600), res.Sample["uptime_seconds"])
	res = check(t, c, time.Second, false)
	require.True(t, res.OK, res.Detail)
	require.True(t, res.Reused, "the monitor connection is kept")
	require.Nil(t, res.Sample)
}

func TestRealRedis(t *testing.T) {
	primary := testproc.StartRedis(t, "")
	replica := testproc.StartRedis(t, primary.Addr)

	t.Run("primary", func(t *testing.T) {
		c := newChecker(t, probe.Spec{Engine: probe.EngineRedis, Address: primary.Addr, Username: testproc.MonitorUser, Password: testproc.MonitorPassword})
		res := check(t, c, time.Second, true)
		require.True(t, res.OK, res.Detail)
		require.Equal(t, probe.RolePrimary, res.Observation.Role)
		for _, k := range []string{"used_memory", "maxmemory", "connected_clients", "ops_per_sec", "commands_total",
			"net_in_bytes_total", "net_out_bytes_total", "uptime_seconds", "storage_used_bytes", "maxclients"} {
			require.Contains(t, res.Sample, k)
		}
		require.Positive(t, res.Sample["maxclients"], "INFO clients tells the client limit (Redis >= 7)")
		require.NotContains(t, res.Sample, "replication_running", "a primary replicates from nobody")
		require.Equal(t, res.Sample["used_memory"], res.Sample["storage_used_bytes"])
		require.GreaterOrEqual(t, res.Sample["uptime_seconds"], int64(0))
		// The probes' own commands are traffic: the counters move between
		// two samples of one connection, and never back.
		next := check(t, c, time.Second, true)
		require.True(t, next.OK, next.Detail)
		require.Greater(t, next.Sample["net_in_bytes_total"], res.Sample["net_in_bytes_total"])
		require.Greater(t, next.Sample["net_out_bytes_total"], res.Sample["net_out_bytes_total"])
		require.Greater(t, next.Sample["commands_total"], res.Sample["commands_total"])
	})
	t.Run("replica", func(t *testing.T) {
		c := newChecker(t, probe.Spec{Engine: probe.EngineRedis, Address: replica.Addr, Username: testproc.MonitorUser, Password: testproc.MonitorPassword})
		require.Eventually(t, func() bool {
			res := check(t, c, time.Second, false)
			return res.OK && res.Observation.Replication != nil && res.Observation.Replication.IORunning
		}, 10*time.Second, 20*time.Millisecond)
		res := check(t, c, time.Second, false)
		require.Equal(t, probe.RoleReplica, res.Observation.Role)
		require.Equal(t, primary.Addr, res.Observation.Replication.Source)
		res = check(t, c, time.Second, true)
		require.True(t, res.OK, res.Detail)
		require.Equal(t, int64(1), res.Sample["replication_running"], "master_link_status:up")
	})
	t.Run("wrong password", func(t *testing.T) {
		c := newChecker(t, probe.Spec{Engine: probe.EngineRedis, Address: primary.Addr, Username: testproc.MonitorUser, Password: "wrong-password"})
		res := check(t, c, time.Second, false)
		require.False(t, res.OK)
		require.Equal(t, probe.ReasonAuthFailed, res.Reason, res.Detail)
	})
	t.Run("no auth", func(t *testing.T) {
		c := newChecker(t, probe.Spec{Engine: probe.EngineRedis, Address: primary.Addr})
		res := check(t, c, time.Second, false)
		require.Equal(t, probe.ReasonAuthFailed, res.Reason, res.Detail)
	})
	t.Run("restart is seen on the kept connection", func(t *testing.T) {
		c := newChecker(t, probe.Spec{Engine: probe.EngineRedis, Address: primary.Addr, Username: testproc.MonitorUser, Password: testproc.MonitorPassword})
		require.True(t, check(t, c, time.Second, false).OK)
		primary.Kill()
		res := check(t, c, time.Second, false)
		require.False(t, res.OK)
		require.Equal(t, probe.ReasonRefused, res.Reason, "the stale connection is re-dialled once: %s", res.Detail)
		primary.Start()
		res = check(t, c, time.Second, false)
		require.True(t, res.OK, res.Detail)
	})
}

func TestRealMariaDB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mariadbd")
	}
	primary := testproc.StartMariaDB(t, 1)
	replica := testproc.StartMariaDB(t, 2)
	replica.ReplicateFrom(t, primary)
	spec := func(addr, pass string) probe.Spec {
		return probe.Spec{Engine: probe.EngineMySQL, Address: addr, Username: testproc.MonitorUser, Password: pass}
	}

	// A tenant table, for the used storage: data and index bytes of the
	// tables outside the system schemas, as root reads them.
	primary.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v VARCHAR(200), KEY (v)) ENGINE=InnoDB",
		"INSERT INTO app.t SELECT seq, REPEAT('x', 200) FROM app.seq_1_to_2000",
		"ANALYZE TABLE app.t") // data_length is InnoDB's statistics: refresh them now
	roots := map[*testproc.MariaDB]*sql.DB{primary: primary.Root(t), replica: replica.Root(t)}
	storage := func(m *testproc.MariaDB) int64 {
		var n sql.NullInt64
		if err := roots[m].QueryRow("SELECT SUM(data_length + index_length) FROM information_schema.tables " +
			"WHERE table_schema NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema')").Scan(&n); err != nil || !n.Valid {
			return -1 // never equal to a sample
		}
		return n.Int64
	}

	c := newChecker(t, spec(primary.Addr, testproc.MonitorPassword))
	res := check(t, c, 2*time.Second, true)
	require.True(t, res.OK, res.Detail)
	require.Equal(t, probe.RolePrimary, res.Observation.Role)
	require.False(t, *res.Observation.ReadOnly)
	for _, k := range []string{"connected_clients", "questions_total", "uptime_seconds", "net_in_bytes_total", "net_out_bytes_total",
		"storage_used_bytes"} {
		require.Contains(t, res.Sample, k)
	}
	require.Greater(t, res.Sample["storage_used_bytes"], int64(2000*200), "2,000 rows of 200 bytes")
	// The limits alerting divides by, as root reads them.
	var maxConn, pool int64
	require.NoError(t, roots[primary].QueryRow("SELECT @@max_connections, @@innodb_buffer_pool_size").Scan(&maxConn, &pool))
	require.Equal(t, maxConn, res.Sample["max_connections"])
	require.Equal(t, pool, res.Sample["innodb_buffer_pool_size"])
	require.Positive(t, res.Sample["innodb_buffer_pool_bytes_data"])
	require.LessOrEqual(t, res.Sample["innodb_buffer_pool_bytes_data"], pool)
	require.NotContains(t, res.Sample, "replication_running", "a primary replicates from nobody")
	require.Eventually(t, func() bool {
		// InnoDB may refresh its table statistics between two reads.
		return check(t, c, 2*time.Second, true).Sample["storage_used_bytes"] == storage(primary)
	}, 10*time.Second, 50*time.Millisecond, "the monitor sees what root sees")
	next := check(t, c, 2*time.Second, true)
	require.Greater(t, next.Sample["net_in_bytes_total"], res.Sample["net_in_bytes_total"], "the probes' own queries are traffic")
	require.Greater(t, next.Sample["net_out_bytes_total"], res.Sample["net_out_bytes_total"])
	require.NotContains(t, check(t, c, 2*time.Second, false).Sample, "storage_used_bytes", "storage is read only when sampling")

	// Without SHOW VIEW information_schema lists none of the tables: the
	// probe still succeeds, the sample has no used storage rather than 0.
	primary.Exec(t, "CREATE USER 'mon-noview'@'%' IDENTIFIED BY 'noview-secret-1'",
		"GRANT REPLICATION CLIENT, PROCESS, SLAVE MONITOR ON *.* TO 'mon-noview'@'%'")
	nv := newChecker(t, probe.Spec{Engine: probe.EngineMySQL, Address: primary.Addr, Username: "mon-noview", Password: "noview-secret-1"})
	res = check(t, nv, 2*time.Second, true)
	require.True(t, res.OK, res.Detail)
	require.NotContains(t, res.Sample, "storage_used_bytes")
	require.Contains(t, res.Sample, "net_in_bytes_total")

	r := newChecker(t, spec(replica.Addr, testproc.MonitorPassword))
	res = check(t, r, 2*time.Second, true)
	require.True(t, res.OK, res.Detail)
	require.Equal(t, probe.RoleReplica, res.Observation.Role)
	require.True(t, *res.Observation.ReadOnly)
	rep := res.Observation.Replication
	require.True(t, rep.IORunning && rep.SQLRunning, "%+v", rep)
	require.GreaterOrEqual(t, rep.LagSeconds, int64(0))
	require.Eventually(t, func() bool {
		// The replica holds the tenant's table too, once replicated.
		res := check(t, r, 2*time.Second, true)
		return res.OK && res.Sample["storage_used_bytes"] > 0 && res.Sample["storage_used_bytes"] == storage(replica)
	}, 10*time.Second, 50*time.Millisecond, "the replica's used storage")
	res = check(t, r, 2*time.Second, true)
	require.Equal(t, int64(1), res.Sample["replication_running"], "IO and SQL threads run")
	require.Contains(t, res.Sample, "max_connections")
	replica.Exec(t, "STOP SLAVE SQL_THREAD")
	res = check(t, r, 2*time.Second, true)
	require.True(t, res.OK, res.Detail)
	require.Equal(t, int64(0), res.Sample["replication_running"], "the SQL thread stopped")
	require.NotContains(t, check(t, r, 2*time.Second, false).Sample, "replication_running", "only sampling probes sample")
	replica.Exec(t, "START SLAVE SQL_THREAD")

	bad := newChecker(t, spec(primary.Addr, "wrong-password"))
	res = check(t, bad, 2*time.Second, false)
	require.Equal(t, probe.ReasonAuthFailed, res.Reason, res.Detail)
}

// TestNoLeaks runs 1,000 probe cycles over healthy, hung, garbage and
// refusing targets and checks that goroutines and file descriptors return to
// where they were.
func TestNoLeaks(t *testing.T) {
	addrs := map[probe.Engine][]string{
		probe.EngineRedis: {listen(t, fakenode.RESP), listen(t, fakenode.Blackhole), listen(t, fakenode.Garbage), listen(t, fakenode.Reset), "127.0.0.1:" + itoa(testproc.FreePort(t))},
		probe.EngineTCP:   {listen(t, fakenode.RESP), "127.0.0.1:" + itoa(testproc.FreePort(t))},
		probe.EngineMySQL: {listen(t, fakenode.Garbage), "127.0.0.1:" + itoa(testproc.FreePort(t))},
	}
	fdsBefore := openFDs(t)
	ignore := goleak.IgnoreCurrent()
	var checkers []probe.Checker
	for engine, list := range addrs {
		for _, a := range list {
			c, err := checker.New(probe.Spec{Engine: engine, Address: a, Username: "u", Password: "p"}, dialer())
			require.NoError(t, err)
			checkers = append(checkers, c)
		}
	}
	const cycles = 1000
	done := make(chan struct{})
	for _, c := range checkers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < cycles; i++ {
				timeout := 10 * time.Millisecond
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				c.Check(ctx, i%10 == 0)
				cancel()
			}
		}()
	}
	// Blackhole cycles take the full timeout: 1,000 × 10 ms.
	for range checkers {
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Fatal("probe cycles did not finish")
		}
	}
	for _, c := range checkers {
		require.NoError(t, c.Close())
	}
	goleak.VerifyNone(t, ignore)
	require.Eventually(t, func() bool { return openFDs(t) <= fdsBefore }, 5*time.Second, 10*time.Millisecond,
		"file descriptors: before %d, after %d", fdsBefore, openFDs(t))
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

func itoa(n int) string { return strconv.Itoa(n) }
