package checker

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
)

// mysqlIOBackstop bounds every read and write of the driver in case a
// context without deadline reaches it; probes normally carry a shorter one.
const mysqlIOBackstop = 30 * time.Second

// statusQuery reads the counters and the semi-sync state in one round trip.
const statusQuery = "SHOW GLOBAL STATUS WHERE Variable_name IN " +
	"('Threads_connected','Questions','Rpl_semi_sync_master_status','Uptime','Slow_queries','Bytes_received','Bytes_sent'," +
	"'Innodb_buffer_pool_bytes_data')"

// Ping queries: a sampling probe reads the limits the alerting rules
// divide by (connections, buffer pool) with read_only, in the same round
// trip; a plain probe reads read_only alone.
const (
	pingQuery       = "SELECT @@global.read_only"
	pingSampleQuery = "SELECT @@global.read_only, @@global.max_connections, @@global.innodb_buffer_pool_size"
)

// errUnknownSystemVariable is MySQL's ER_UNKNOWN_SYSTEM_VARIABLE: a server
// without InnoDB has no innodb_buffer_pool_size.
const errUnknownSystemVariable = 1193

// statusSamples maps SHOW GLOBAL STATUS variables to sample names. The
// *_total names are counters since the server started (metering turns them
// into traffic and operations, detecting a restart by uptime_seconds going
// down).
var statusSamples = map[string]string{
	"Threads_connected": "connected_clients",
	"Questions":         "questions_total",
	"Uptime":            "uptime_seconds",
	"Slow_queries":      "slow_queries_total",
	"Bytes_received":    "net_in_bytes_total",
	"Bytes_sent":        "net_out_bytes_total",
	// Bytes of data pages in the buffer pool (alerting divides it by
	// innodb_buffer_pool_size).
	"Innodb_buffer_pool_bytes_data": "innodb_buffer_pool_bytes_data",
}

// storageQuery sums the data and index bytes of every table outside the
// system schemas: the storage the tenant's data takes (metering's used
// storage). information_schema lists only the tables the account holds
// some privilege on, so the monitor account needs SHOW VIEW (which reads
// no row) to see them all; seeing none gives NULL, and no sample. It opens
// every table's metadata, which is why it runs only when sampling.
const storageQuery = "SELECT SUM(data_length + index_length) FROM information_schema.tables " +
	"WHERE table_schema NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema')"

// mysqlChecker probes MySQL/MariaDB over one kept connection (a pool of at
// most one): SELECT @@read_only is the ping, SHOW SLAVE STATUS tells the
// replication state, SHOW GLOBAL STATUS the counters and semi-sync.
type mysqlChecker struct {
	connector driver.Connector
	db        *sql.DB
	// greetingErr is set by a fresh connection whose first bytes are no
	// MySQL greeting; the driver hides it behind "invalid connection" or
	// waits for a packet of the garbage's announced length.
	greetingErr atomic.Pointer[ProtocolError]
	// lastConn is the connection dialled last, closed when the driver panics.
	lastConn atomic.Pointer[greetingConn]
}

type nopLogger struct{}

func (nopLogger) Print(...any) {}

func newMySQL(spec probe.Spec, dial probe.Dialer) (*mysqlChecker, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = spec.Username, spec.Password
	cfg.Net, cfg.Addr = "tcp", spec.Address
	c := &mysqlChecker{}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		g := &greetingConn{Conn: conn, c: c}
		c.lastConn.Store(g)
		return g, nil
	}
	cfg.ReadTimeout, cfg.WriteTimeout = mysqlIOBackstop, mysqlIOBackstop
	// The driver logs failed connections itself; the health state machine
	// owns reporting them.
	cfg.Logger = nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("probe: mysql connector: %w", err)
	}
	c.connector = conn
	c.openDB()
	return c, nil
}

// openDB (re)creates the pool of at most one connection.
func (c *mysqlChecker) openDB() {
	db := sql.OpenDB(c.connector)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	c.db = db
}

func (c *mysqlChecker) Close() error { return c.db.Close() }

func (c *mysqlChecker) Check(ctx context.Context, withSample bool) probe.Result {
	started := time.Now()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	reused := c.db.Stats().Idle > 0
	c.greetingErr.Store(nil)
	res, err := c.safeCheck(ctx, withSample)
	if err != nil {
		if pe := c.greetingErr.Load(); pe != nil {
			err = fmt.Errorf("connect %s: %w", "greeting", pe)
		}
		r := fail(started, err)
		r.Reused = reused
		return r
	}
	res.OK, res.Started, res.Duration, res.Reused = true, started, time.Since(started), reused
	return res
}

// safeCheck runs check and turns a panic of the driver into a protocol error.
// go-sql-driver/mysql slices server packets without bounds checks (a 1-byte
// greeting or a 2-byte error packet panics it) and whatever listens on a
// probed port may send anything: one such peer must not take the whole
// healthcheck process down. database/sql still counts the connection that
// panicked as open, so the pool is replaced and the socket closed; the
// driver's watcher goroutine of that connection cannot be reached and stays
// (greetingConn stops the common case, a malformed greeting, before that).
func (c *mysqlChecker) safeCheck(ctx context.Context, withSample bool) (res probe.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &ProtocolError{Msg: fmt.Sprintf("mysql driver failed on the server's reply: %v", r)}
			if g := c.lastConn.Load(); g != nil {
				_ = g.Conn.Close()
			}
			_ = c.db.Close()
			c.openDB()
		}
	}()
	return c.check(ctx, withSample)
}

func (c *mysqlChecker) check(ctx context.Context, withSample bool) (probe.Result, error) {
	var res probe.Result
	obs := &res.Observation
	obs.ConnectedReplicas = -1

	ro, limits, err := c.readOnly(ctx, withSample)
	if err != nil {
		return res, err
	}
	readOnly := ro != 0
	obs.ReadOnly = &readOnly

	st, err := c.slaveStatus(ctx)
	if err != nil {
		return res, err
	}
	if st == nil {
		obs.Role = probe.RolePrimary
	} else {
		obs.Role = probe.RoleReplica
		rep := &probe.Replication{
			Configured: true,
			IORunning:  st["Slave_IO_Running"] == "Yes",
			SQLRunning: st["Slave_SQL_Running"] == "Yes",
			LagSeconds: -1,
			Position:   st["Gtid_IO_Pos"],
		}
		if v, err := strconv.ParseInt(st["Seconds_Behind_Master"], 10, 64); err == nil {
			rep.LagSeconds = v
		}
		if h := st["Master_Host"]; h != "" {
			rep.Source = h + ":" + st["Master_Port"]
		}
		rep.LastError = strings.TrimSpace(st["Last_IO_Error"] + " " + st["Last_SQL_Error"])
		if len(rep.LastError) > maxDetail {
			rep.LastError = rep.LastError[:maxDetail]
		}
		obs.Replication = rep
	}

	status, err := c.globalStatus(ctx)
	if err != nil {
		return res, err
	}
	if v, ok := status["Rpl_semi_sync_master_status"]; ok && obs.Role == probe.RolePrimary {
		on := strings.EqualFold(v, "ON")
		obs.SemiSync = &on
	}
	if withSample {
		res.Sample = make(probe.Sample, len(statusSamples)+len(limits)+3)
		for k, name := range statusSamples {
			if n, err := strconv.ParseInt(status[k], 10, 64); err == nil {
				res.Sample[name] = n
			}
		}
		for name, n := range limits {
			res.Sample[name] = n
		}
		if rep := obs.Replication; rep != nil {
			if rep.LagSeconds >= 0 {
				res.Sample["replication_lag_seconds"] = rep.LagSeconds
			}
			res.Sample["replication_running"] = 0
			if rep.IORunning && rep.SQLRunning {
				res.Sample["replication_running"] = 1
			}
		}
		if n, ok := c.storageUsed(ctx); ok {
			res.Sample["storage_used_bytes"] = n
		}
	}
	return res, nil
}

// readOnly reads @@read_only and, when sampling, the limits of
// pingSampleQuery as sample name → value. A server that knows no
// innodb_buffer_pool_size answers the plain query instead: a missing
// variable must not fail the health probe.
func (c *mysqlChecker) readOnly(ctx context.Context, withSample bool) (int64, map[string]int64, error) {
	var ro int64
	if withSample {
		var maxConn, pool int64
		err := c.db.QueryRowContext(ctx, pingSampleQuery).Scan(&ro, &maxConn, &pool)
		if err == nil {
			return ro, map[string]int64{"max_connections": maxConn, "innodb_buffer_pool_size": pool}, nil
		}
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != errUnknownSystemVariable {
			return 0, nil, fmt.Errorf("select read_only: %w", err)
		}
	}
	if err := c.db.QueryRowContext(ctx, pingQuery).Scan(&ro); err != nil {
		return 0, nil, fmt.Errorf("select read_only: %w", err)
	}
	return ro, nil, nil
}

// storageUsed runs storageQuery within the probe's deadline. The node has
// already answered everything health depends on, so a failure here (a
// slow information_schema on a node with many tables, the deadline) only
// leaves the metric out of this sample; it never fails the probe.
func (c *mysqlChecker) storageUsed(ctx context.Context) (int64, bool) {
	var n sql.NullInt64
	if err := c.db.QueryRowContext(ctx, storageQuery).Scan(&n); err != nil || !n.Valid {
		return 0, false
	}
	return n.Int64, true
}

// slaveStatus returns SHOW SLAVE STATUS as column → value, nil when the node
// replicates from nobody.
func (c *mysqlChecker) slaveStatus(ctx context.Context) (map[string]string, error) {
	rows, err := c.db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("show slave status: %w", err)
		}
		return nil, nil
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	st := make(map[string]string, len(cols))
	for i, col := range cols {
		if vals[i].Valid {
			st[col] = vals[i].String
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	return st, nil
}

func (c *mysqlChecker) globalStatus(ctx context.Context) (map[string]string, error) {
	rows, err := c.db.QueryContext(ctx, statusQuery)
	if err != nil {
		return nil, fmt.Errorf("show global status: %w", err)
	}
	defer rows.Close()
	st := make(map[string]string, 5)
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("show global status: %w", err)
		}
		st[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("show global status: %w", err)
	}
	return st, nil
}

// greetingConn checks the first packet a server sends before the driver
// sees it: a MySQL greeting is a short packet (3-byte length, sequence 0)
// holding protocol version 10, or an error packet (0xff) such as "too many
// connections". The driver parses the greeting without bounds checks, so the
// whole packet is read and its layout checked here; a truncated greeting
// would otherwise panic the probe.
type greetingConn struct {
	net.Conn
	c       *mysqlChecker
	checked bool
	// pending is the checked greeting (and whatever arrived with it), not
	// yet handed to the driver; readErr is the error that ended it early.
	pending []byte
	readErr error
}

// maxGreeting is far above any real handshake packet (~100 bytes).
const maxGreeting = 4096

func (g *greetingConn) Read(b []byte) (int, error) {
	if !g.checked {
		g.checked = true
		g.pending, g.readErr = g.readGreeting()
		var pe *ProtocolError
		if errors.As(g.readErr, &pe) {
			g.c.greetingErr.Store(pe)
			_ = g.Conn.Close()
			g.pending = nil
		}
	}
	if len(g.pending) > 0 {
		n := copy(b, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if g.readErr != nil {
		return 0, g.readErr
	}
	return g.Conn.Read(b)
}

// readGreeting reads until the first packet is complete and checks it. It
// returns what it read with the read error that cut it short, or a
// *ProtocolError when the bytes are no greeting.
func (g *greetingConn) readGreeting() ([]byte, error) {
	buf := make([]byte, 0, 256)
	for {
		if bad := badGreeting(buf); bad != "" {
			return nil, &ProtocolError{Msg: fmt.Sprintf("%s: %q", bad, evidence(buf))}
		}
		if len(buf) >= 4 && len(buf) >= 4+packetLen(buf) {
			return buf, nil
		}
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := g.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
	}
}

func packetLen(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 }

// badGreeting says what is wrong with the start of a greeting (head may be
// incomplete), or "" when nothing is yet.
func badGreeting(head []byte) string {
	n := len(head)
	switch {
	case n >= 3 && packetLen(head) > maxGreeting:
		return "greeting longer than 4 KiB"
	case n >= 4 && head[3] != 0:
		return "greeting sequence is not 0"
	case n >= 5 && head[4] != 10 && head[4] != 0xff:
		return fmt.Sprintf("protocol version %d, want 10", head[4])
	case n >= 4 && n >= 4+packetLen(head):
		return badGreetingPayload(head[4 : 4+packetLen(head)])
	}
	return ""
}

// badGreetingPayload checks that a complete greeting has every field the
// driver reads (go-sql-driver/mysql readHandshakePacket, handleErrorPacket).
func badGreetingPayload(p []byte) string {
	if len(p) == 0 {
		return "empty greeting"
	}
	if p[0] == 0xff {
		// error number [2], then optional '#' and 5-byte SQL state
		if len(p) < 4 || (p[3] == '#' && len(p) < 9) {
			return "truncated error packet"
		}
		return ""
	}
	// server version [NUL-terminated], connection id [4], auth data [8],
	// filler [1], capabilities [2]
	nul := bytes.IndexByte(p[1:], 0)
	if nul < 0 {
		return "server version not terminated"
	}
	pos := 1 + nul + 1 + 4 + 8 + 1 + 2
	// optional: charset [1], status [2], capabilities [2], auth data length [1],
	// reserved [6], MariaDB capabilities [4], auth data [13], plugin name
	if len(p) < pos || (len(p) > pos && len(p) < pos+3+2+1+6+4+13) {
		return "truncated greeting"
	}
	return ""
}
