package drivertest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	gmysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

func testCDC(ctx context.Context, t *testing.T, in *instance) {
	if in.engine != driver.EngineMySQL {
		t.Skip("CDC is a MySQL feature")
	}
	for i := range in.nodes {
		if err := CheckCDC(ctx, in.nodes[i], in.specs[i]); err != nil {
			t.Errorf("node %s: %v", in.nodes[i].ID, err)
		}
	}
}

// CheckCDC checks that the spec's cdc account can do what the cdc service
// does on a MariaDB node: a consistent snapshot with its GTID position
// (Binlog_snapshot_* + BINLOG_GTID_POS), SHOW BINLOG STATUS, SHOW SLAVE
// STATUS, and a COM_BINLOG_DUMP_GTID from that position; and, as a sync
// job writing its target does, with its own session server_id, create,
// alter, write and drop a table on a primary, while a replica's read_only
// refuses it (the account has no READ_ONLY ADMIN). The application
// database (s.Database) must hold a table.
func CheckCDC(ctx context.Context, n driver.Node, s driver.NodeSpec) error {
	db := OpenMySQL(n.Address, s.CDC, "")
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("cdc connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return fmt.Errorf("cdc snapshot: %w", err)
	}
	status := map[string]string{}
	rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return fmt.Errorf("cdc snapshot status: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return err
		}
		status[k] = v
	}
	rows.Close()
	file, pos := status["Binlog_snapshot_file"], status["Binlog_snapshot_position"]
	if file == "" || pos == "" {
		return fmt.Errorf("cdc snapshot status = %v, want Binlog_snapshot_file and _position", status)
	}
	var gtid sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, pos).Scan(&gtid); err != nil {
		return fmt.Errorf("cdc BINLOG_GTID_POS: %w", err)
	}
	if !gtid.Valid {
		return fmt.Errorf("cdc BINLOG_GTID_POS(%s, %s) is NULL", file, pos)
	}
	// Any table of the application database: the account sees them all.
	var table string
	if err := conn.QueryRowContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name <> ? LIMIT 1",
		s.Database, cdcTable).Scan(&table); err != nil {
		return fmt.Errorf("cdc sees no table in %s: %w", s.Database, err)
	}
	var count int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+s.Database+"`.`"+table+"`").Scan(&count); err != nil {
		return fmt.Errorf("cdc snapshot read of %s.%s: %w", s.Database, table, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	for _, q := range []string{"SHOW BINLOG STATUS", "SHOW SLAVE STATUS", "SELECT @@gtid_binlog_pos"} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("cdc %s: %w", q, err)
		}
		rows.Close()
	}
	if err := checkBinlogDump(ctx, n.Address, s.CDC, gtid.String); err != nil {
		return err
	}
	return checkSyncWrites(ctx, db, n, s.Database)
}

// cdcTable is the table CheckCDC writes as a sync job would.
const cdcTable = "cdc_was_here"

// checkSyncWrites writes as a sync job's applier does: with its own session
// server_id (BINLOG REPLAY), CREATE, ALTER ... ADD INDEX, INSERT, UPDATE,
// DELETE and DROP. A node that is not the primary must refuse the first
// write with read_only.
func checkSyncWrites(ctx context.Context, db *sql.DB, n driver.Node, database string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("cdc connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION server_id = 2097152255"); err != nil {
		return fmt.Errorf("cdc set session server_id: %w", err)
	}
	table := "`" + database + "`.`" + cdcTable + "`"
	stmts := []string{
		"CREATE TABLE IF NOT EXISTS " + table + " (i INT PRIMARY KEY, v INT)",
		"ALTER TABLE " + table + " ADD INDEX IF NOT EXISTS v (v)",
		"REPLACE INTO " + table + " VALUES (1, 1)",
		"UPDATE " + table + " SET v = 2 WHERE i = 1",
		"DELETE FROM " + table + " WHERE i = 1",
		"DROP TABLE IF EXISTS " + table,
	}
	if n.Role != driver.RolePrimary {
		_, err := conn.ExecContext(ctx, stmts[0])
		if errno := mysqlErrno(err); errno != erOptionPreventsStmt {
			return fmt.Errorf("cdc create table on %s %s: err = %v, want read_only", n.Role, n.ID, err)
		}
		return nil
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("cdc sync write %q: %w", q, err)
		}
	}
	return nil
}

// checkBinlogDump dumps the binlog from gtid as a MariaDB replica would and
// waits for the server's format description event: the server sends it only
// once it accepted the dump.
func checkBinlogDump(ctx context.Context, addr string, c driver.Credentials, gtid string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return err
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 0x7c0000ff, Flavor: gmysql.MariaDBFlavor, Host: host, Port: uint16(port),
		User: c.Username, Password: c.Password, MaxReconnectAttempts: 1, DisableRetrySync: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	defer syncer.Close()
	set, err := gmysql.ParseMariadbGTIDSet(gtid)
	if err != nil {
		return fmt.Errorf("parse gtid %q: %w", gtid, err)
	}
	streamer, err := syncer.StartSyncGTID(set)
	if err != nil {
		return fmt.Errorf("cdc binlog dump from %q: %w", gtid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return fmt.Errorf("cdc binlog dump from %q: %w", gtid, err)
		}
		if ev.Header.EventType == replication.FORMAT_DESCRIPTION_EVENT {
			return nil
		}
	}
}
