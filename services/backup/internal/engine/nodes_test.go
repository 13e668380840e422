package engine_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys/phystest"
)

// The admin account every node has, as provisioning's init file creates it.
const (
	adminUser     = phystest.AdminUser
	adminPassword = "admin-secret-1"
)

// mariadb is one running node configured as provisioning's local driver
// configures it (GTID strict, ROW, replicas logging what they apply).
type mariadb struct {
	proc    *enginetest.Proc
	addr    string
	dataDir string
	root    *sql.DB
}

func startMariaDB(t *testing.T, serverID uint32) *mariadb {
	t.Helper()
	n := phystest.StartMariaDB(t, phystest.Options{ServerID: serverID, AdminPassword: adminPassword, Deferred: true})
	return &mariadb{proc: n.Proc, addr: n.Addr, dataDir: n.DataDir, root: n.Root}
}

func (m *mariadb) exec(t *testing.T, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range stmts {
		if _, err := m.root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s on %s: %v", q, m.addr, err)
		}
	}
}

func (m *mariadb) pos(t *testing.T) string {
	t.Helper()
	var p string
	if err := m.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// startPair runs a primary and a replica replicating from it.
func startPair(t *testing.T) (primary, replica *mariadb) {
	t.Helper()
	primary, replica = startMariaDB(t, 1), startMariaDB(t, 2)
	enginetest.StartAll(t, []*enginetest.Proc{primary.proc, replica.proc})
	host, port, _ := splitAddr(primary.addr)
	replica.exec(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
		host, port, adminUser, adminPassword), "START SLAVE", "SET GLOBAL read_only=ON")
	return primary, replica
}

func splitAddr(addr string) (string, int, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, err := strconv.Atoi(addr[i+1:])
			return addr[:i], p, err
		}
	}
	return addr, 0, fmt.Errorf("no port in %q", addr)
}

// waitCaughtUp waits until the replica applied everything the primary
// logged.
func waitCaughtUp(t *testing.T, primary, replica *mariadb) {
	t.Helper()
	want := primary.pos(t)
	eventually(t, 30*time.Second, func() error {
		var got string
		if err := replica.root.QueryRow("SELECT @@gtid_slave_pos").Scan(&got); err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("replica at %q, primary at %q (slave status %v)", got, want, enginetest.SlaveStatus(replica.root)["Last_Error"])
		}
		return nil
	})
}

// instances is the stand-in for provisioning's internal view: the test
// sets what it lists.
type instances struct {
	mu  sync.Mutex
	all map[string]backup.Instance
}

func newInstances(ins ...backup.Instance) *instances {
	s := &instances{all: make(map[string]backup.Instance)}
	for _, in := range ins {
		s.all[in.ID] = in
	}
	return s
}

func (s *instances) List(context.Context) ([]backup.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]backup.Instance, 0, len(s.all))
	for _, in := range s.all {
		out = append(out, in)
	}
	return out, nil
}

func (s *instances) Get(_ context.Context, id string) (backup.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.all[id]
	if !ok {
		return backup.Instance{}, fmt.Errorf("instance %s: %w", id, backup.ErrNotFound)
	}
	return in, nil
}

func (s *instances) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.all, id)
}

// eventually calls try until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, try func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		<-tick.C
	}
}

// The admin user of the Redis nodes.
const (
	redisUser     = "admin"
	redisPassword = "redis-secret-1"
)

// startRedis runs a redis-server whose default user is off and whose admin
// user may do everything; its dir (the node's data dir) is p.Dir.
func startRedis(t *testing.T) *enginetest.Proc {
	t.Helper()
	p := enginetest.Redis(t, redisUser, redisPassword)
	p.Start()
	return p
}

// replicaOf makes r replicate from p as the admin user.
func replicaOf(t *testing.T, r, p *enginetest.Proc) {
	t.Helper()
	host, port, err := splitAddr(p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	redisDo(t, r, "CONFIG", "SET", "masteruser", redisUser)
	redisDo(t, r, "CONFIG", "SET", "masterauth", redisPassword)
	redisDo(t, r, "REPLICAOF", host, strconv.Itoa(port))
}

// redisDo runs one command as the admin user and returns a simple reply
// (status, integer or bulk string) as text.
func redisDo(t *testing.T, p *enginetest.Proc, args ...string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(c)
	send := func(args ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := io.WriteString(c, b.String()); err != nil {
			t.Fatal(err)
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch line[0] {
		case '-':
			t.Fatalf("redis %v: %s", args, line[1:])
		case '$':
			n, _ := strconv.Atoi(line[1:])
			if n < 0 {
				return ""
			}
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(rd, buf); err != nil {
				t.Fatal(err)
			}
			return string(buf[:n])
		}
		return line[1:]
	}
	send("AUTH", redisUser, redisPassword)
	return send(args...)
}
