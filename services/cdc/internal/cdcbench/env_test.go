package cdcbench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
)

// The account capture reads the binlog with, the grants provisioning gives
// canopy_cdc.
const (
	cdcUser     = "canopy_cdc"
	cdcPassword = "bench-cdc-secret-1"
	benchDB     = "app"
	benchTable  = "orders"
)

// node is a started mariadbd with binlogs the way Canopy runs tenant nodes
// (ROW, FULL row metadata, GTID strict mode).
type node struct {
	proc *enginetest.Proc
	// root is a root pool over the unix socket, for loads and positions.
	root *sql.DB
}

// source is how capture and the raw syncer reach the node.
func (n *node) source() capture.Source {
	return capture.Source{Addr: n.proc.Addr, User: cdcUser, Password: cdcPassword}
}

// startNode starts one mariadbd with the orders table; the table's CREATE is
// in the binlog so gtid_binlog_pos is never empty afterwards (an empty start
// position would mean "current end" to capture).
func startNode(b *testing.B) *node {
	b.Helper()
	n := startMariaDB(b, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.root.ExecContext(ctx, ordersDDL(benchDB+"."+benchTable)+" ENGINE=InnoDB"); err != nil {
		b.Fatalf("create the orders table: %v", err)
	}
	return n
}

// startMariaDB starts one mariadbd as a tenant node runs (ROW binlog, FULL
// row metadata, GTID strict mode, log_slave_updates, durable commits: lag
// is measured from the commit's acknowledgement, which includes the fsync)
// with canopy_cdc granted what provisioning grants it, and the bench
// database.
func startMariaDB(b *testing.B, serverID uint32) *node {
	b.Helper()
	p := enginetest.New(b, "mariadbd", func(p *enginetest.Proc, _ bool) []string {
		args := []string{"--no-defaults", "--datadir=" + filepath.Join(p.Dir, "data"), "--tmpdir=" + p.Dir,
			"--socket=" + enginetest.MariaDBSocket(p), "--port=" + strconv.Itoa(p.Port), "--bind-address=127.0.0.1",
			"--skip-name-resolve", "--pid-file=" + filepath.Join(p.Dir, "m.pid"),
			"--server-id=" + strconv.FormatUint(uint64(serverID), 10), "--log-bin=mysql-bin", "--log-slave-updates",
			"--binlog-format=ROW", "--binlog-row-metadata=FULL", "--gtid-strict-mode=ON",
			"--sync-binlog=1", "--innodb-flush-log-at-trx-commit=1",
			"--innodb-buffer-pool-size=256M", "--innodb-log-file-size=64M", "--performance-schema=OFF",
			"--max-connections=50", "--init-file=" + filepath.Join(p.Dir, "init.sql"),
		}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		return args
	}, enginetest.WaitMariaDB)
	enginetest.MariaDBData(b, filepath.Join(p.Dir, "data"))
	initSQL := strings.Join([]string{
		"SET SESSION sql_log_bin=0",
		fmt.Sprintf("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY '%s'", cdcUser, cdcPassword),
		fmt.Sprintf("GRANT %s ON *.* TO %s@'%%'", nodetest.CDCGrants, cdcUser),
	}, ";\n") + ";\n"
	if err := os.WriteFile(filepath.Join(p.Dir, "init.sql"), []byte(initSQL), 0o600); err != nil {
		b.Fatal(err)
	}
	p.Start()
	n := &node{proc: p, root: enginetest.RootDB(enginetest.MariaDBSocket(p))}
	// A few connections: the loader and the paced writer use one each.
	n.root.SetMaxOpenConns(4)
	b.Cleanup(func() { n.root.Close() })
	if _, err := n.root.ExecContext(b.Context(), "CREATE DATABASE "+benchDB); err != nil {
		b.Fatal(err)
	}
	return n
}

// position returns the node's gtid_binlog_pos: every transaction committed
// so far.
func (n *node) position(ctx context.Context) (string, error) {
	var pos string
	if err := n.root.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return "", fmt.Errorf("gtid_binlog_pos: %w", err)
	}
	return pos, nil
}

var statuses = [...]string{"new", "paid", "shipped", "cancelled"}

// appendOrder appends one row of the orders table as a VALUES tuple. The
// values depend on id only, so a load is reproducible; created_at is the
// wall clock at the client.
func appendOrder(sb *strings.Builder, id int64, at time.Time) {
	fmt.Fprintf(sb, "(%d,'cust-%05d',%d.%02d,'%s','%s','order %d: ", id, id%50000, id%100000, id%100,
		statuses[id%4], at.UTC().Format("2006-01-02 15:04:05.000"), id)
	// A note of 40 to 160 bytes, like a short free-text field.
	for range 1 + id%4 {
		sb.WriteString("deliver to the back door, ring twice. ")
	}
	sb.WriteString("')")
}

// insertOrders inserts ids [first, first+count) with one multi-row INSERT
// (one transaction with autocommit).
func insertOrders(ctx context.Context, conn execer, first, count int64) error {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + benchDB + "." + benchTable + " (id, customer, amount, status, created_at, note) VALUES ")
	now := time.Now()
	for i := range count {
		if i > 0 {
			sb.WriteByte(',')
		}
		appendOrder(&sb, first+i, now)
	}
	if _, err := conn.ExecContext(ctx, sb.String()); err != nil {
		return fmt.Errorf("insert orders %d..%d: %w", first, first+count-1, err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// load inserts rows orders from id first on, in transactions of txRows rows
// made of INSERTs of stmtRows rows each.
func (n *node) load(ctx context.Context, first, rows, txRows, stmtRows int64) error {
	for tx0 := first; tx0 < first+rows; tx0 += txRows {
		txEnd := min(tx0+txRows, first+rows)
		tx, err := n.root.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		for s := tx0; s < txEnd; s += stmtRows {
			if err := insertOrders(ctx, tx, s, min(stmtRows, txEnd-s)); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit orders %d..%d: %w", tx0, txEnd-1, err)
		}
	}
	return nil
}

// startKafka starts the embedded broker on a free port (single-partition
// auto-created topics, like the sink creates them), closed when the
// benchmark ends.
func startKafka(b *testing.B) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 1}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	return broker.Addr()
}

// deleteTopics drops a finished iteration's topics: the embedded broker
// keeps every record in memory.
func deleteTopics(ctx context.Context, broker string, topics ...string) error {
	c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	res, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	for t, err := range res.Errors {
		if err != nil {
			return fmt.Errorf("delete topic %s: %w", t, err)
		}
	}
	return nil
}

// envInt reads a positive integer knob, def when unset.
func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}
