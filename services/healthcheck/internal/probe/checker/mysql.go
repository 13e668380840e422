package checker

import (
	"context"
	"database/sql"
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
	"('Threads_connected','Questions','Rpl_semi_sync_master_status','Uptime','Slow_queries')"

// mysqlChecker probes MySQL/MariaDB over one kept connection (a pool of at
// most one): SELECT @@read_only is the ping, SHOW SLAVE STATUS tells the
// replication state, SHOW GLOBAL STATUS the counters and semi-sync.
type mysqlChecker struct {
	db *sql.DB
	// greetingErr is set by a fresh connection whose first bytes are no
	// MySQL greeting; the driver hides it behind "invalid connection" or
	// waits for a packet of the garbage's announced length.
	greetingErr atomic.Pointer[ProtocolError]
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
		return &greetingConn{Conn: conn, c: c}, nil
	}
	cfg.ReadTimeout, cfg.WriteTimeout = mysqlIOBackstop, mysqlIOBackstop
	// The driver logs failed connections itself; the health state machine
	// owns reporting them.
	cfg.Logger = nopLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("probe: mysql connector: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	c.db = db
	return c, nil
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
	res, err := c.check(ctx, withSample)
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

func (c *mysqlChecker) check(ctx context.Context, withSample bool) (probe.Result, error) {
	var res probe.Result
	obs := &res.Observation
	obs.ConnectedReplicas = -1

	var ro int64
	if err := c.db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		return res, fmt.Errorf("select read_only: %w", err)
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
		res.Sample = make(probe.Sample, 6)
		for k, name := range map[string]string{
			"Threads_connected": "connected_clients", "Questions": "questions_total",
			"Uptime": "uptime_seconds", "Slow_queries": "slow_queries_total",
		} {
			if n, err := strconv.ParseInt(status[k], 10, 64); err == nil {
				res.Sample[name] = n
			}
		}
		if obs.Replication != nil && obs.Replication.LagSeconds >= 0 {
			res.Sample["replication_lag_seconds"] = obs.Replication.LagSeconds
		}
	}
	return res, nil
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

// greetingConn checks the first bytes a server sends: a MySQL greeting is a
// short packet (3-byte length, sequence 0) holding protocol version 10, or an
// error packet (0xff) such as "too many connections".
type greetingConn struct {
	net.Conn
	c       *mysqlChecker
	checked bool
}

// maxGreeting is far above any real handshake packet (~100 bytes).
const maxGreeting = 4096

func (g *greetingConn) Read(b []byte) (int, error) {
	n, err := g.Conn.Read(b)
	if g.checked || n == 0 {
		return n, err
	}
	g.checked = true
	head := b[:n]
	bad := ""
	switch {
	case n >= 3 && int(head[0])|int(head[1])<<8|int(head[2])<<16 > maxGreeting:
		bad = "greeting longer than 4 KiB"
	case n >= 4 && head[3] != 0:
		bad = "greeting sequence is not 0"
	case n >= 5 && head[4] != 10 && head[4] != 0xff:
		bad = fmt.Sprintf("protocol version %d, want 10", head[4])
	}
	if bad == "" {
		return n, err
	}
	pe := &ProtocolError{Msg: fmt.Sprintf("%s: %q", bad, evidence(head))}
	g.c.greetingErr.Store(pe)
	_ = g.Conn.Close()
	return 0, pe
}
