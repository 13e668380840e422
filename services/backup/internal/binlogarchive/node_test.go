package binlogarchive_test

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/backup/internal/binlogarchive"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys/phystest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

// The admin account every Canopy node has (ALL); the archiver and the
// replicas use it.
const (
	adminUser     = phystest.AdminUser
	adminPassword = "admin-secret-1"
)

// node is one mariadbd configured like a Canopy node (the local driver's
// renderCnf: binlog ROW with full images and metadata, GTID strict mode,
// replicas logging what they apply, durable commits).
type node struct {
	id   string
	p    *enginetest.Proc
	root *sql.DB
}

func newNode(t *testing.T, id string, serverID int) *node {
	t.Helper()
	n := phystest.StartMariaDB(t, phystest.Options{ServerID: uint32(serverID), AdminPassword: adminPassword,
		Durable: true, BufferPool: "32M", Deferred: true})
	return &node{id: id, p: n.Proc, root: n.Root}
}

// startNodes starts the nodes at once.
func startNodes(t *testing.T, ns ...*node) {
	t.Helper()
	ps := make([]*enginetest.Proc, len(ns))
	for i, n := range ns {
		ps[i] = n.p
	}
	enginetest.StartAll(t, ps)
}

func (n *node) source() binlogarchive.Source {
	return binlogarchive.Source{NodeID: n.id, Address: n.p.Addr, User: adminUser, Password: adminPassword}
}

func (n *node) exec(t *testing.T, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := n.root.Conn(ctx)
	if err != nil {
		t.Fatalf("connect %s: %v", n.id, err)
	}
	defer conn.Close()
	// Session settings (sql_log_bin=0) must not leak into the pool.
	defer conn.Raw(func(any) error { return driver.ErrBadConn })
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s on %s: %v", q, n.id, err)
		}
	}
}

func (n *node) pos(t *testing.T) string {
	t.Helper()
	var p string
	if err := n.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// purge starts a new binlog file and purges every older one. MariaDB
// keeps a file until InnoDB checkpointed its transactions (the binlog
// checkpoint), so it waits for that.
func (n *node) purge(t *testing.T) {
	t.Helper()
	n.exec(t, "FLUSH BINARY LOGS")
	var file, pos, doDB, ignoreDB string
	if err := n.root.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		n.exec(t, "PURGE BINARY LOGS TO '"+file+"'")
		var first, size string
		if err := n.root.QueryRow("SHOW BINARY LOGS").Scan(&first, &size); err != nil {
			t.Fatal(err)
		}
		if first == file {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("binlogs before %s not purged on %s", file, n.id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rows is a table's content, one "id|v" line per row.
func (n *node) rows(t *testing.T, table string) []string {
	t.Helper()
	rs, err := n.root.Query("SELECT CONCAT_WS('|', id, v) FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatalf("read %s on %s: %v", table, n.id, err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// archive is a running archiver and what its sink stored.
type archive struct {
	a    *binlogarchive.Archiver
	dir  string
	done chan error

	mu    sync.Mutex
	segs  []binlogarchive.Segment
	files []string
	calls int
	// failCalls makes those sink calls (1-based) fail.
	failCalls map[int]bool
	attempts  []binlogarchive.Segment
}

func startArchive(t *testing.T, ctx context.Context, cfg binlogarchive.Config, locate binlogarchive.Locate, start string, failCalls ...int) *archive {
	t.Helper()
	ar := &archive{a: binlogarchive.New(cfg), dir: t.TempDir(), done: make(chan error, 1), failCalls: map[int]bool{}}
	for _, c := range failCalls {
		ar.failCalls[c] = true
	}
	go func() { ar.done <- ar.a.Run(ctx, locate, start, ar.sink) }()
	return ar
}

func (ar *archive) sink(_ context.Context, seg binlogarchive.Segment) error {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	ar.calls++
	ar.attempts = append(ar.attempts, seg)
	if ar.failCalls[ar.calls] {
		return fmt.Errorf("sink call %d fails on purpose", ar.calls)
	}
	f := filepath.Join(ar.dir, fmt.Sprintf("%012d", len(ar.segs)+1))
	if err := os.WriteFile(f, seg.Data, 0o600); err != nil {
		return err
	}
	ar.segs = append(ar.segs, seg)
	ar.files = append(ar.files, f)
	return nil
}

func (ar *archive) stored() ([]binlogarchive.Segment, []string) {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	return append([]binlogarchive.Segment(nil), ar.segs...), append([]string(nil), ar.files...)
}

// waitCommitted waits until the archive committed pos.
func (ar *archive) waitCommitted(t *testing.T, pos string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for ar.a.Stats().Committed != pos {
		if time.Now().After(deadline) {
			t.Fatalf("archive committed %q after 30s, want %q", ar.a.Stats().Committed, pos)
		}
		select {
		case err := <-ar.done:
			t.Fatalf("archiver stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the archiver and checks that Run returned nil.
func (ar *archive) stop(t *testing.T, cancel context.CancelFunc) {
	t.Helper()
	cancel()
	select {
	case err := <-ar.done:
		if err != nil {
			t.Fatalf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

var gtidLine = regexp.MustCompile(`(?m)^#.*\bGTID (\d+-\d+-\d+)`)

// decode runs mariadb-binlog on one segment file as a user would, failing
// on an error or a warning, and returns the GTIDs it shows.
func decode(t *testing.T, file string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("mariadb-binlog", "--no-defaults", "--verify-binlog-checksum", "-v", file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb-binlog %s: %v: %s", file, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Fatalf("mariadb-binlog %s warned: %s", file, stderr.String())
	}
	if strings.Contains(stdout.String(), "Warning") {
		t.Fatalf("mariadb-binlog %s output has a warning:\n%s", file, stdout.String())
	}
	return gtids(stdout.String())
}

// gtids lists the GTIDs of mariadb-binlog's output in order.
func gtids(out string) []string {
	var gs []string
	for _, m := range gtidLine.FindAllStringSubmatch(out, -1) {
		gs = append(gs, m[1])
	}
	return gs
}

// apply pipes mariadb-binlog of the files into mariadb on n, as a restore
// replays segments.
func apply(t *testing.T, n *node, files []string) {
	t.Helper()
	var stderr bytes.Buffer
	args := append([]string{"--no-defaults"}, files...)
	script := fmt.Sprintf("mariadb-binlog %s | mariadb --no-defaults -uroot --socket=%s",
		strings.Join(args, " "), enginetest.MariaDBSocket(n.p))
	cmd := exec.Command("bash", "-o", "pipefail", "-c", script)
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("replay segments on %s: %v: %s%s", n.id, err, out, stderr.String())
	}
}

// checkArchive checks that the segments chain from start, that each one
// decodes, and that the GTIDs of domain 0 after start up to the end are
// there once each; it returns the files.
func checkArchive(t *testing.T, segs []binlogarchive.Segment, files []string, start, end string) {
	t.Helper()
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	prev := start
	seen := map[string]int{}
	var seqs []int
	for i, s := range segs {
		if s.StartPos != prev {
			t.Errorf("segment %d starts at %q, previous ended at %q", i+1, s.StartPos, prev)
		}
		prev = s.EndPos
		if s.FirstAt.IsZero() || s.LastAt.Before(s.FirstAt) {
			t.Errorf("segment %d times %v..%v", i+1, s.FirstAt, s.LastAt)
		}
		gtids := decode(t, files[i])
		if len(gtids) != s.Transactions {
			t.Errorf("segment %d: mariadb-binlog shows %d transactions, segment says %d", i+1, len(gtids), s.Transactions)
		}
		for _, g := range gtids {
			seen[g]++
			parts := strings.Split(g, "-")
			n, _ := strconv.Atoi(parts[2])
			seqs = append(seqs, n)
		}
	}
	if prev != end {
		t.Errorf("last segment ends at %q, want %q", prev, end)
	}
	for g, n := range seen {
		if n != 1 {
			t.Errorf("GTID %s archived %d times", g, n)
		}
	}
	sort.Ints(seqs)
	first, last := seqOf(t, start)+1, seqOf(t, end)
	if len(seqs) != last-first+1 || seqs[0] != first || seqs[len(seqs)-1] != last {
		t.Errorf("archived sequence numbers %d..%d (%d of them), want each of %d..%d", seqs[0], seqs[len(seqs)-1], len(seqs), first, last)
	}
}

func seqOf(t *testing.T, pos string) int {
	t.Helper()
	if pos == "" {
		return 0
	}
	parts := strings.Split(pos, "-")
	n, err := strconv.Atoi(parts[len(parts)-1])
	if err != nil {
		t.Fatalf("position %q: %v", pos, err)
	}
	return n
}
