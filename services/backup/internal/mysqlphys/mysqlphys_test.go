package mysqlphys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys/phystest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

func newTools(t *testing.T) *Tools {
	t.Helper()
	tools, err := New(Config{ScratchDir: enginetest.TempDir(t)})
	if err != nil {
		t.Skipf("backup tools: %v", err)
	}
	return tools
}

func payload(id int) string {
	s := sha256.Sum256([]byte(strconv.Itoa(id)))
	return hex.EncodeToString(s[:])
}

// writeRow commits row id and the counter in one transaction, with the
// session's timestamp at ts when not zero, and returns its GTID.
func writeRow(ctx context.Context, db *sql.DB, id int, ts int64) (string, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	stmts := []string{"SET timestamp = DEFAULT"}
	if ts != 0 {
		stmts[0] = fmt.Sprintf("SET timestamp = %d", ts)
	}
	stmts = append(stmts, "BEGIN",
		fmt.Sprintf("INSERT INTO shop.orders (id, payload) VALUES (%d, '%s')", id, payload(id)),
		fmt.Sprintf("UPDATE shop.counter SET n = %d", id), "COMMIT")
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
	}
	var g string
	err = conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&g)
	return g, err
}

// checkRows checks that the data holds exactly rows 1..max, whole, with
// the counter at max (no transaction partly there), and returns max.
func checkRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var maxID, count, n int
	if err := db.QueryRow("SELECT COALESCE(MAX(id), 0), COUNT(*) FROM shop.orders").Scan(&maxID, &count); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT n FROM shop.counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if count != maxID || n != maxID {
		t.Fatalf("restored data: max id %d, %d rows, counter %d: want rows 1..max and counter = max", maxID, count, n)
	}
	var bad int
	rows, err := db.Query("SELECT id, payload FROM shop.orders")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		var p string
		if err := rows.Scan(&id, &p); err != nil {
			t.Fatal(err)
		}
		if p != payload(id) {
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d rows with a wrong payload", bad)
	}
	return maxID
}

// inScratch runs fn against a scratch server on dir and stops it.
func inScratch(t *testing.T, tools *Tools, dir string, fn func(db *sql.DB)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := tools.startScratch(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	fn(s.db)
}

// A backup taken under concurrent writes restores exactly the
// transactions up to its GTID; replaying the source's binlog reaches a
// stop GTID or a stop time exactly and leaves no replication state; a cut
// stream does not prepare.
func TestBackupPrepareInspectReplay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tools := newTools(t)
	node := phystest.StartMariaDB(t, phystest.Options{})
	node.Exec(t, "CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, payload CHAR(64) NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE shop.counter (n INT NOT NULL) ENGINE=InnoDB", "INSERT INTO shop.counter VALUES (0)",
		"CREATE TABLE shop.notes (k VARCHAR(10) PRIMARY KEY) ENGINE=Aria", "INSERT INTO shop.notes VALUES ('a'), ('b')",
		"CREATE DATABASE crm", "CREATE TABLE crm.people (id INT PRIMARY KEY)",
		// Leftovers of replication, as a backup of a replica carries.
		"SET GLOBAL gtid_slave_pos = CONCAT(@@gtid_binlog_pos, ',5-9-3')",
		"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, MASTER_USER='x', MASTER_USE_GTID=slave_pos")

	// Writers commit rows 1, 2, 3, ... in their own transactions while the
	// backup runs; gtids[id] is each one's GTID.
	var (
		mu     sync.Mutex
		gtids  = map[int]string{}
		nextID = 0
	)
	write := func(ts int64) error {
		mu.Lock()
		nextID++
		id := nextID
		// Ids commit in order: one writer at a time keeps "rows 1..max"
		// the exact state at any GTID.
		defer mu.Unlock()
		g, err := writeRow(ctx, node.Root, id, ts)
		gtids[id] = g
		return err
	}
	for range 50 {
		if err := write(0); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := write(0); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	streamFile := filepath.Join(t.TempDir(), "backup.xb")
	f, err := os.Create(streamFile)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tools.Backup(ctx, Source{Address: node.Addr, DataDir: node.DataDir, User: phystest.AdminUser,
		Password: phystest.AdminPassword}, f)
	close(stop)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if werr := <-writerDone; werr != nil {
		t.Fatal(werr)
	}
	st, _ := os.Stat(streamFile)
	if res.GTID == "" || res.DataBytes != st.Size() || res.ConsistentAt.IsZero() {
		t.Fatalf("backup result %+v (stream %d bytes)", res, st.Size())
	}
	afterBackup := nextID

	// Rows after the backup carry fixed binlog timestamps: base+i for the
	// i-th, so that a stop time selects an exact set.
	base := time.Now().Add(time.Hour).Truncate(time.Second).Unix()
	firstLate := nextID + 1
	for i := range 30 {
		if err := write(base + int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	binlogs := node.BinlogFiles(t)

	prepare := func(t *testing.T) (string, string) {
		t.Helper()
		r, err := os.Open(streamFile)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		dir := filepath.Join(t.TempDir(), "data")
		gtid, err := tools.Prepare(ctx, r, dir)
		if err != nil {
			t.Fatal(err)
		}
		return dir, gtid
	}

	t.Run("prepare and inspect", func(t *testing.T) {
		dir, gtid := prepare(t)
		if gtid != res.GTID {
			t.Fatalf("prepared GTID %q, backup reported %q", gtid, res.GTID)
		}
		stats, err := tools.Inspect(ctx, dir, 2)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Tables != 4 || len(stats.Sample) != 2 || stats.Sample[0].Table != "people" || stats.Sample[1].Table != "counter" {
			t.Fatalf("stats %+v: want 4 tables, sample crm.people and shop.counter", stats)
		}
		for _, ts := range stats.Sample {
			if !ts.CheckOK {
				t.Errorf("CHECK TABLE %s.%s not ok", ts.Schema, ts.Table)
			}
		}
		inScratch(t, tools, dir, func(db *sql.DB) {
			maxID := checkRows(t, db)
			if maxID < 50 || maxID > afterBackup {
				t.Fatalf("restored max id %d, want 50..%d", maxID, afterBackup)
			}
			// The GTID the backup reports is the last transaction it holds.
			if withDomain0(t, gtid, gtids[maxID]) != gtid {
				t.Fatalf("restored rows up to %d (GTID %s), backup GTID %s", maxID, gtids[maxID], gtid)
			}
			all, err := StatsOf(ctx, db, []backup.TableStat{{Schema: "shop", Table: "orders"}, {Schema: "shop", Table: "gone"}}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if all.Tables != 4 || all.Sample[0].Rows != int64(maxID) || !all.Sample[0].CheckOK || all.Sample[0].Checksum == 0 || all.Sample[1].CheckOK {
				t.Fatalf("StatsOf %+v", all)
			}
		})
		t.Logf("backup %d bytes at %s: restored through %s", res.DataBytes, res.ConsistentAt.Format(time.RFC3339), gtid)
	})

	t.Run("replay to a stop GTID", func(t *testing.T) {
		dir, gtid := prepare(t)
		target := firstLate + 9
		reached, err := tools.Replay(ctx, dir, binlogs, gtid, time.Time{}, gtids[target])
		if err != nil {
			t.Fatal(err)
		}
		if want := withDomain0(t, gtid, gtids[target]); reached != want {
			t.Fatalf("reached %s, want %s", reached, want)
		}
		checkReplayed(t, tools, dir, target)
	})

	t.Run("replay to a stop time", func(t *testing.T) {
		dir, gtid := prepare(t)
		// Exclusive, to the second: rows stamped base+0 .. base+19 are in.
		stopBefore := time.Unix(base+19, 500_000_000)
		reached, err := tools.Replay(ctx, dir, binlogs, gtid, stopBefore, "")
		if err != nil {
			t.Fatal(err)
		}
		target := firstLate + 19
		if want := withDomain0(t, gtid, gtids[target]); reached != want {
			t.Fatalf("reached %s, want %s", reached, want)
		}
		checkReplayed(t, tools, dir, target)
	})

	t.Run("replay past the end", func(t *testing.T) {
		dir, gtid := prepare(t)
		_, err := tools.Replay(ctx, dir, binlogs, gtid, time.Time{}, "0-1-999999")
		if !errors.Is(err, ErrStopNotReached) {
			t.Fatalf("replay to a GTID past the binlog: %v, want ErrStopNotReached", err)
		}
	})

	t.Run("cut stream", func(t *testing.T) {
		data, err := os.ReadFile(streamFile)
		if err != nil {
			t.Fatal(err)
		}
		// The last file's first chunk: a cut there ends on a chunk
		// boundary, which mbstream accepts.
		i := bytes.Index(data, []byte("\x0f\x00\x00\x00xtrabackup_info"))
		if i < 10 || string(data[i-10:i-2]) != "XBSTCK01" {
			t.Fatalf("no xtrabackup_info chunk in the stream")
		}
		cases := []struct {
			name string
			r    io.Reader
		}{
			{"mid-chunk", bytes.NewReader(data[:len(data)/2])},
			{"chunk boundary", bytes.NewReader(data[:i-10])},
			{"failing reader", io.MultiReader(bytes.NewReader(data[:len(data)/3]), iotestErr{})},
		}
		for _, c := range cases {
			_, err := tools.Prepare(ctx, c.r, filepath.Join(t.TempDir(), "data"))
			if err == nil {
				t.Errorf("%s: prepare of a cut stream succeeded", c.name)
			} else {
				t.Logf("%s: %v", c.name, firstLine(err))
			}
		}
	})
}

// withDomain0 is position pos with domain 0 at GTID g: the backup's
// position carries the source's replication domain 5 as well.
func withDomain0(t *testing.T, pos, g string) string {
	t.Helper()
	p, err := parsePos(pos)
	if err != nil {
		t.Fatal(err)
	}
	q, err := parsePos(g)
	if err != nil {
		t.Fatal(err)
	}
	p[0] = q[0]
	return p.String()
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("repository read failed") }

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// checkReplayed checks a replayed dir: rows 1..want, no replication state.
func checkReplayed(t *testing.T, tools *Tools, dir string, want int) {
	t.Helper()
	for _, f := range []string{"master.info", "relay-log.info", "multi-master.info"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s left in the replayed dir", f)
		}
	}
	inScratch(t, tools, dir, func(db *sql.DB) {
		if got := checkRows(t, db); got != want {
			t.Fatalf("replayed through row %d, want %d", got, want)
		}
		var pos string
		var n int
		if err := db.QueryRow("SELECT @@gtid_slave_pos, (SELECT COUNT(*) FROM mysql.gtid_slave_pos)").Scan(&pos, &n); err != nil {
			t.Fatal(err)
		}
		if pos != "" || n != 0 {
			t.Fatalf("gtid_slave_pos %q (%d rows) after replay", pos, n)
		}
		rows, err := db.Query("SHOW ALL SLAVES STATUS")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if rows.Next() {
			t.Fatal("a replication connection is left after replay")
		}
	})
}

// A missing tool names itself and the Debian package to install.
func TestNewMissingTool(t *testing.T) {
	t.Parallel()
	_, err := New(Config{BackupBin: "/nonexistent/mariadb-backup", ScratchDir: t.TempDir()})
	if !errors.Is(err, ErrToolMissing) || !strings.Contains(err.Error(), "mariadb-backup") ||
		!strings.Contains(err.Error(), "Debian package mariadb-backup") {
		t.Fatalf("New with a missing mariadb-backup: %v", err)
	}
}
