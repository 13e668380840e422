package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	// Every goroutine of Run (the syncer's reader included) ends with it.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// cdcUser is the account capture reads with, granted what provisioning
// grants canopy_cdc.
var cdcUser = Source{User: "canopy_cdc", Password: "cdc-secret-1"}

type server struct {
	p    *enginetest.Proc
	root *sql.DB
	src  Source
}

// startServer runs one MariaDB 10.11 node logging its binlog the way
// capture needs it: ROW format, FULL row metadata, GTID strict mode.
func startServer(t *testing.T) *server {
	t.Helper()
	p := enginetest.New(t, "mariadbd", func(p *enginetest.Proc, restart bool) []string {
		args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir,
			"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
			"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"), "--server-id=7",
			"--log-bin=mysql-bin", "--log-slave-updates", "--gtid-strict-mode=ON", "--binlog-format=ROW",
			"--binlog-row-metadata=FULL", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
			"--performance-schema=OFF", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
			"--init-file=" + filepath.Join(p.Dir, "init.sql")}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		return args
	}, enginetest.WaitMariaDB)
	enginetest.MariaDBData(t, filepath.Join(p.Dir, "data"))
	init := "SET SESSION sql_log_bin=0;\n" +
		"CREATE USER IF NOT EXISTS canopy_cdc@'%' IDENTIFIED BY '" + cdcUser.Password + "';\n" +
		"GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO canopy_cdc@'%';\n"
	if err := os.WriteFile(filepath.Join(p.Dir, "init.sql"), []byte(init), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Start()
	root := enginetest.RootDB(enginetest.MariaDBSocket(p))
	root.SetMaxOpenConns(4)
	t.Cleanup(func() { root.Close() })
	src := cdcUser
	src.Addr = p.Addr
	return &server{p: p, root: root, src: src}
}

func (s *server) exec(t *testing.T, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, q := range stmts {
		if _, err := s.root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// tx runs statements in one transaction on one connection, after the
// session statements (not in the transaction) in pre.
func (s *server) tx(t *testing.T, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := s.root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			tx.Rollback()
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func (s *server) pos(t *testing.T) string {
	t.Helper()
	var p string
	if err := s.root.QueryRow("SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// capture is one running Run.
type capture struct {
	out  chan change.Batch
	errc chan error
	stop context.CancelFunc
}

func (s *server) start(t *testing.T, cfg Config, capacity int) *capture {
	t.Helper()
	cfg.Source = s.src
	if cfg.ServerID == 0 {
		cfg.ServerID = 0x7c000001
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "cdc.t1.i1"
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &capture{out: make(chan change.Batch, capacity), errc: make(chan error, 1), stop: cancel}
	go func() { c.errc <- Run(ctx, cfg, c.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-c.errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("capture ended with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("capture did not stop")
		}
	})
	return c
}

// until reads batches until one carries the checkpoint GTID want, and
// returns all batches read.
func (c *capture) until(t *testing.T, want string) []change.Batch {
	t.Helper()
	var got []change.Batch
	deadline := time.After(60 * time.Second)
	for {
		select {
		case b := <-c.out:
			got = append(got, b)
			if b.Checkpoint != nil && b.Checkpoint.GTID == want {
				return got
			}
		case err := <-c.errc:
			c.errc <- err
			t.Fatalf("capture ended before %s: %v", want, err)
		case <-deadline:
			t.Fatalf("no checkpoint %s within 60s; read %d batches", want, len(got))
		}
	}
}

func messages(bs []change.Batch) []change.Message {
	var ms []change.Message
	for _, b := range bs {
		ms = append(ms, b.Messages...)
	}
	return ms
}
