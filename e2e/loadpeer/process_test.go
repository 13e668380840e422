package loadpeer

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/porttest"
)

// echoServer accepts connections on a loopback port and echoes each line
// prefixed with "echo "; it stops when the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestStartHAProxyForwards(t *testing.T) {
	backend := echoServer(t)
	var pid int
	t.Run("proxy", func(t *testing.T) {
		addr := StartHAProxy(t, backend)
		pid = listenerPID(t, addr)
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		for _, msg := range []string{"one", "two"} {
			if _, err := io.WriteString(c, msg+"\n"); err != nil {
				t.Fatal(err)
			}
			got, err := r.ReadString('\n')
			if err != nil || got != "echo "+msg+"\n" {
				t.Fatalf("through haproxy: %q, %v; want %q", got, err, "echo "+msg+"\n")
			}
		}
	})
	// The subtest's cleanup stopped its haproxy.
	if pid != 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("haproxy pid %d still exists after the cleanup (kill 0: %v)", pid, err)
		}
	}
}

// listenerPID finds the haproxy child of this process: the benchmark's
// only kind of child here.
func listenerPID(t *testing.T, addr string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fs) > 1 && fs[1] == strconv.Itoa(os.Getpid()) && strings.Contains(s, "(haproxy)") {
			return pid
		}
	}
	t.Fatalf("no haproxy child of pid %d serving %s", os.Getpid(), addr)
	return 0
}

// startRedis starts a redis-server with user bench (password secret) and
// the default user off.
func startRedis(t *testing.T) string {
	t.Helper()
	p := enginetest.New(t, "redis-server", func(p *enginetest.Proc, _ bool) []string {
		return []string{"--port", strconv.Itoa(p.Port), "--bind", "127.0.0.1", "--dir", p.Dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			"--user", "default", "off", "--user", "bench", "on", ">secret", "~*", "&*", "+@all"}
	}, nil)
	p.Start()
	return p.Addr
}

func TestRedisBenchmark(t *testing.T) {
	addr := startRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	rs, err := RedisBenchmark(ctx, addr, "bench", "secret", RedisOptions{Clients: 4, Requests: 2000, Pipeline: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Name != "redis SET P4" || rs[1].Name != "redis GET P4" {
		t.Fatalf("results %+v, want SET and GET at P4", rs)
	}
	for _, r := range rs {
		if r.OpsPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("%s: implausible %+v", r.Name, r)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: addr, Username: "bench", Password: "secret"})
	defer c.Close()
	if n, err := c.DBSize(ctx).Result(); err != nil || n == 0 {
		t.Errorf("after SETs the server holds %d keys (%v)", n, err)
	}

	t.Run("wrong password", func(t *testing.T) {
		if _, err := RedisBenchmark(ctx, addr, "bench", "wrong", RedisOptions{Requests: 10}); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("err = %v, want WRONGPASS", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		// redis-benchmark itself would spin forever here.
		dead := net.JoinHostPort("127.0.0.1", strconv.Itoa(porttest.Free(t)))
		t0 := time.Now()
		if _, err := RedisBenchmark(ctx, dead, "", "", RedisOptions{Requests: 10}); err == nil {
			t.Error("no error against a closed port")
		}
		if d := time.Since(t0); d > 10*time.Second {
			t.Errorf("took %s to fail", d)
		}
	})
}

// testDatabase creates a database of the test's own on the machine's
// MariaDB (127.0.0.1:3306, root) and returns a DSN to it.
func testDatabase(t *testing.T) string {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.Timeout = "root", "tcp", "127.0.0.1:3306", 2*time.Second
	root, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	name := fmt.Sprintf("loadpeer_test_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		t.Skipf("MariaDB at 127.0.0.1:3306: %v", err)
	}
	t.Cleanup(func() {
		if _, err := root.Exec("DROP DATABASE " + name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

func TestMySQLLoad(t *testing.T) {
	dsn := testDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// One connection, so CONNECTION_ID() below is always the same one.
	db.SetMaxOpenConns(1)

	for _, kind := range []string{PointSelect, Insert} {
		t.Run(kind, func(t *testing.T) {
			r, err := MySQLLoad(ctx, dsn, MySQLOptions{Clients: 3, Duration: 300 * time.Millisecond, Kind: kind, Rows: 1500})
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != "mysql "+kind+" c3" || r.OpsPerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
				t.Errorf("implausible %+v", r)
			}
			var left int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&left); err != nil || left != 0 {
				t.Errorf("%d tables left behind (%v)", left, err)
			}
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		if _, err := MySQLLoad(ctx, dsn, MySQLOptions{Kind: "update"}); err == nil {
			t.Error("no error for kind update")
		}
	})
	t.Run("one connection per client", func(t *testing.T) {
		// Measured from the server: the load's connections while it runs,
		// once those of the subtests before have gone.
		const others = "SELECT COUNT(*) FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()"
		count := func() int {
			var n int
			if err := db.QueryRowContext(ctx, others).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for deadline := time.Now().Add(5 * time.Second); count() > 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections of earlier loads still open after 5s", count())
			}
		}
		done := make(chan error, 1)
		go func() {
			_, err := MySQLLoad(ctx, dsn, MySQLOptions{Clients: 5, Duration: 1500 * time.Millisecond, Kind: PointSelect, Rows: 100})
			done <- err
		}()
		most := 0
	poll:
		for {
			most = max(most, count())
			select {
			case err := <-done:
				done <- err
				break poll
			case <-time.After(20 * time.Millisecond):
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if most != 5 {
			t.Errorf("saw %d load connections at most, want 5", most)
		}
	})
}
