// Package mysqlnode implements topology.Nodes for MariaDB 10.11 nodes with
// GTID replication: it observes, fences, promotes and repoints nodes and
// compares their GTID sets, over a small pool of admin connections per node.
// It decides nothing: which node to promote and when is the recovery's.
package mysqlnode

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/failover/internal/topology"
)

// Config tunes the adapter. Zero values take the defaults.
type Config struct {
	// DialTimeout bounds a connection attempt, so that a dead or unreachable
	// node fails fast (default 250ms; a loopback or LAN dial takes well
	// under a millisecond).
	DialTimeout time.Duration `yaml:"dial_timeout" env:"DIAL_TIMEOUT"`
	// IOTimeout bounds each read and write on a connection, so that a hung
	// node (SIGSTOP, a full disk) fails the call instead of holding it
	// (default 5s). Waits that block on the server (MASTER_GTID_WAIT) are
	// issued in slices shorter than this.
	IOTimeout time.Duration `yaml:"io_timeout" env:"IO_TIMEOUT"`
	// MaxConnsPerNode caps the admin connections kept per node (default 4).
	MaxConnsPerNode int `yaml:"max_conns_per_node" env:"MAX_CONNS_PER_NODE"`
	// SemiSyncTimeout is rpl_semi_sync_master_timeout set on a promoted
	// semi-sync primary (default 2s): how long one commit waits for a
	// replica's acknowledgement before the primary falls back to async
	// until a replica catches up again. Long enough that the replicas
	// repointed right after the promotion connect (a START SLAVE connects
	// within milliseconds) and the first writes are acknowledged by a
	// replica; short enough that a primary whose replicas all died stalls
	// its clients for seconds, not MariaDB's default 10 s.
	SemiSyncTimeout time.Duration `yaml:"semi_sync_timeout" env:"SEMI_SYNC_TIMEOUT"`
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 250 * time.Millisecond
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 5 * time.Second
	}
	if c.MaxConnsPerNode <= 0 {
		c.MaxConnsPerNode = 4
	}
	if c.SemiSyncTimeout <= 0 {
		c.SemiSyncTimeout = 2 * time.Second
	}
	return c
}

// Nodes acts on MariaDB nodes. Safe for concurrent use; Close releases its
// connections.
type Nodes struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	pools  map[poolKey]*sql.DB
	closed bool
}

var _ topology.Nodes = (*Nodes)(nil)

// poolKey keys a pool by address and account: credentials may rotate.
type poolKey struct {
	addr, user, password string
}

// New returns an adapter; log is required.
func New(cfg Config, log *slog.Logger) (*Nodes, error) {
	if log == nil {
		return nil, errors.New("mysqlnode: nil logger")
	}
	return &Nodes{cfg: cfg.withDefaults(), log: log, pools: map[poolKey]*sql.DB{}}, nil
}

// Close closes every kept connection. Calls after Close fail.
func (m *Nodes) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	var errs []error
	for k, db := range m.pools {
		errs = append(errs, db.Close())
		delete(m.pools, k)
	}
	return errors.Join(errs...)
}

var errClosed = errors.New("mysqlnode: closed")

// pool returns the admin pool of a node, opening it on first use.
func (m *Nodes) pool(in topology.Instance, n topology.Node) (*sql.DB, error) {
	k := poolKey{n.Address, in.Admin.Username, in.Admin.Password}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	if db, ok := m.pools[k]; ok {
		return db, nil
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = in.Admin.Username, in.Admin.Password
	cfg.Net, cfg.Addr = "tcp", n.Address
	cfg.Timeout = m.cfg.DialTimeout
	cfg.ReadTimeout, cfg.WriteTimeout = m.cfg.IOTimeout, m.cfg.IOTimeout
	// Observe sends its statements in one round trip; CHANGE MASTER takes
	// no server-side placeholders.
	cfg.MultiStatements = true
	cfg.InterpolateParams = true
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql config for %s: %w", n.Address, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(m.cfg.MaxConnsPerNode)
	db.SetMaxIdleConns(m.cfg.MaxConnsPerNode)
	// A node restarts under us; idle connections to its former process are
	// found dead on reuse (the driver checks) but need not linger.
	db.SetConnMaxIdleTime(time.Minute)
	m.pools[k] = db
	return db, nil
}

// session returns one admin connection to n; the caller closes it.
func (m *Nodes) session(ctx context.Context, in topology.Instance, n topology.Node) (*sql.Conn, error) {
	db, err := m.pool(in, n)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to %s %s: %w", n.ID, n.Address, err)
	}
	return conn, nil
}

func (m *Nodes) logger(in topology.Instance, n topology.Node) *slog.Logger {
	return m.log.With("tenant", in.Tenant, "instance", in.ID, "node", n.ID, "address", n.Address)
}

func execAll(ctx context.Context, conn *sql.Conn, stmts ...string) error {
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// observeQuery reads everything Observe needs in one round trip.
const observeQuery = "SELECT @@read_only, @@gtid_current_pos, @@gtid_slave_pos; SHOW SLAVE STATUS; SHOW SLAVE HOSTS"

// Observe looks at one node: read_only, GTID positions, its replication
// status and the replicas connected to it. It never fails: an unreachable
// node is a view with Reachable false.
func (m *Nodes) Observe(ctx context.Context, in topology.Instance, n topology.Node) topology.NodeView {
	v := topology.NodeView{NodeID: n.ID}
	err := m.observe(ctx, in, n, &v)
	v.ObservedAt = time.Now()
	if err != nil {
		v.Err = err.Error()
		// A server that answered with an error is reachable; a dial, a
		// timeout or a broken connection is not.
		var me *mysql.MySQLError
		v.Reachable = errors.As(err, &me)
	}
	return v
}

func (m *Nodes) observe(ctx context.Context, in topology.Instance, n topology.Node, v *topology.NodeView) error {
	conn, err := m.session(ctx, in, n)
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, observeQuery)
	if err != nil {
		return fmt.Errorf("observe %s: %w", n.ID, err)
	}
	defer rows.Close()
	var readOnly int
	var current, slavePos sql.NullString
	if !rows.Next() {
		return fmt.Errorf("observe %s: no variables row: %w", n.ID, rows.Err())
	}
	if err := rows.Scan(&readOnly, &current, &slavePos); err != nil {
		return fmt.Errorf("observe %s: %w", n.ID, err)
	}
	v.Reachable = true
	v.Writable = readOnly == 0
	v.Position = topology.Position{GTID: current.String}
	if !rows.NextResultSet() {
		return fmt.Errorf("observe %s: no slave status: %w", n.ID, rows.Err())
	}
	st, err := scanMap(rows)
	if err != nil {
		return fmt.Errorf("observe %s: slave status: %w", n.ID, err)
	}
	if st != nil {
		v.Replicating = true
		v.Source = net.JoinHostPort(st["Master_Host"], st["Master_Port"])
		v.LinkUp = st["Slave_IO_Running"] == "Yes"
		v.SQLRunning = st["Slave_SQL_Running"] == "Yes"
		// NULL (IO thread not connected) reads as 0: lag is then unknown
		// and positions, not seconds, say how far the node is.
		v.LagSeconds, _ = strconv.ParseInt(st["Seconds_Behind_Master"], 10, 64)
	}
	if !rows.NextResultSet() {
		return fmt.Errorf("observe %s: no slave hosts: %w", n.ID, rows.Err())
	}
	for rows.Next() {
		h, err := scanRow(rows)
		if err != nil {
			return fmt.Errorf("observe %s: slave hosts: %w", n.ID, err)
		}
		if h["Host"] != "" {
			v.Replicas = append(v.Replicas, net.JoinHostPort(h["Host"], h["Port"]))
		}
	}
	return rows.Err()
}

// scanMap reads the first row of the current result set as column → value,
// nil when it has none.
func scanMap(rows *sql.Rows) (map[string]string, error) {
	if !rows.Next() {
		return nil, rows.Err()
	}
	return scanRow(rows)
}

func scanRow(rows *sql.Rows) (map[string]string, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	row := make(map[string]string, len(cols))
	for i, c := range cols {
		row[c] = vals[i].String
	}
	return row, nil
}

// slaveStatus returns SHOW SLAVE STATUS as column → value, nil when the node
// has no replication configured.
func slaveStatus(ctx context.Context, conn *sql.Conn) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	defer rows.Close()
	st, err := scanMap(rows)
	if err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	return st, rows.Err()
}

// Fence makes n refuse client writes: client connections are killed (a
// commit waiting for a semi-sync acknowledgement fails instead of being
// acknowledged later, and SET read_only does not wait behind it),
// read_only goes on (later commits of non-admin sessions fail), clients
// that connected meanwhile are killed, and only then is the semi-sync
// master side turned off, once no client can be acknowledged by it.
func (m *Nodes) Fence(ctx context.Context, in topology.Instance, n topology.Node) error {
	began := time.Now()
	conn, err := m.session(ctx, in, n)
	if err != nil {
		return fmt.Errorf("fence %s: %w", n.ID, err)
	}
	defer conn.Close()
	killed, err := killClients(ctx, conn, in)
	if err != nil {
		return fmt.Errorf("fence %s: %w", n.ID, err)
	}
	if err := execAll(ctx, conn, "SET GLOBAL read_only=ON"); err != nil {
		return fmt.Errorf("fence %s: %w", n.ID, err)
	}
	again, err := killClients(ctx, conn, in)
	if err != nil {
		return fmt.Errorf("fence %s: %w", n.ID, err)
	}
	if err := execAll(ctx, conn, "SET GLOBAL rpl_semi_sync_master_enabled=OFF"); err != nil {
		return fmt.Errorf("fence %s: %w", n.ID, err)
	}
	m.logger(in, n).Info("node fenced", "killed_connections", killed+again, "took", time.Since(began))
	return nil
}

// clientsQuery lists the connections of clients: not this session, not the
// server's own threads, not Canopy's admin or replication accounts (a
// replica's binlog dump must keep streaming so that it receives everything
// the node has).
const clientsQuery = `SELECT ID FROM information_schema.PROCESSLIST
WHERE ID <> CONNECTION_ID() AND USER NOT IN (?, ?, 'system user', 'event_scheduler', 'unauthenticated user')
AND COMMAND NOT IN ('Binlog Dump', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker')`

// errUnknownThread is ER_NO_SUCH_THREAD: the connection ended by itself.
const errUnknownThread = 1094

func killClients(ctx context.Context, conn *sql.Conn, in topology.Instance) (int, error) {
	rows, err := conn.QueryContext(ctx, clientsQuery, in.Admin.Username, in.Replication.Username)
	if err != nil {
		return 0, fmt.Errorf("list client connections: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list client connections: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("list client connections: %w", err)
	}
	for _, id := range ids {
		if _, err := conn.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) && me.Number == errUnknownThread {
				continue
			}
			return 0, fmt.Errorf("kill connection %d: %w", id, err)
		}
	}
	return len(ids), nil
}

// Promote makes replica n the writable primary. When it replicates, the IO
// thread stops first and the node applies everything it received (so a
// promotion loses nothing its relay log holds) before replication is
// removed; then the semi-sync sides swap and read_only goes off, in one
// round trip.
func (m *Nodes) Promote(ctx context.Context, in topology.Instance, n topology.Node) error {
	began := time.Now()
	conn, err := m.session(ctx, in, n)
	if err != nil {
		return fmt.Errorf("promote %s: %w", n.ID, err)
	}
	defer conn.Close()
	st, err := slaveStatus(ctx, conn)
	if err != nil {
		return fmt.Errorf("promote %s: %w", n.ID, err)
	}
	var applied string
	if st != nil {
		// Refused before anything changes: the node stays a replica.
		if err := applierFailed(n, st); err != nil {
			return err
		}
		if err := execAll(ctx, conn, "STOP SLAVE IO_THREAD"); err != nil {
			return fmt.Errorf("promote %s: %w", n.ID, err)
		}
		if st, err = slaveStatus(ctx, conn); err != nil {
			return fmt.Errorf("promote %s: %w", n.ID, err)
		}
		if applied = st["Gtid_IO_Pos"]; applied != "" {
			if st["Slave_SQL_Running"] != "Yes" {
				if err := applierFailed(n, st); err != nil {
					return err
				}
				// An applier stopped by hand resumes.
				if err := execAll(ctx, conn, "START SLAVE SQL_THREAD"); err != nil {
					return fmt.Errorf("promote %s: %w", n.ID, err)
				}
			}
			if err := m.waitGTID(ctx, conn, applied); err != nil {
				return fmt.Errorf("promote %s: relay log not applied: %w", n.ID, err)
			}
		}
		if err := execAll(ctx, conn, "STOP SLAVE", "RESET SLAVE ALL"); err != nil {
			return fmt.Errorf("promote %s: %w", n.ID, err)
		}
	}
	final := "SET GLOBAL rpl_semi_sync_slave_enabled=OFF; "
	if in.SemiSync {
		final += fmt.Sprintf("SET GLOBAL rpl_semi_sync_master_timeout=%d; SET GLOBAL rpl_semi_sync_master_wait_point='AFTER_SYNC'; SET GLOBAL rpl_semi_sync_master_enabled=ON; ",
			m.cfg.SemiSyncTimeout.Milliseconds())
	} else {
		final += "SET GLOBAL rpl_semi_sync_master_enabled=OFF; "
	}
	final += "SET GLOBAL read_only=OFF"
	if _, err := conn.ExecContext(ctx, final); err != nil {
		return fmt.Errorf("promote %s: writes on: %w", n.ID, err)
	}
	m.logger(in, n).Info("node promoted", "applied_up_to", applied, "semi_sync", in.SemiSync, "took", time.Since(began))
	return nil
}

// applierFailed refuses a candidate whose applier stopped on an error: its
// relay log cannot be applied, so promoting it would lose what it received,
// and waiting will not help.
func applierFailed(n topology.Node, st map[string]string) error {
	if e := st["Last_SQL_Errno"]; st["Slave_SQL_Running"] != "Yes" && e != "" && e != "0" {
		return fmt.Errorf("promote %s: applier stopped on error %s: %s", n.ID, e, st["Last_SQL_Error"])
	}
	return nil
}

// waitGTID waits until the node's applier reached pos, or ctx ends. It
// waits in slices shorter than the connection's IO timeout.
func (m *Nodes) waitGTID(ctx context.Context, conn *sql.Conn, pos string) error {
	slice := m.cfg.IOTimeout / 2
	for {
		wait := slice
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl); left < wait {
				wait = left
			}
		}
		if wait <= 0 {
			return fmt.Errorf("position %s not reached: %w", pos, context.DeadlineExceeded)
		}
		var res sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, wait.Seconds()).Scan(&res); err != nil {
			return fmt.Errorf("wait for %s: %w", pos, err)
		}
		if res.Valid && res.Int64 == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("position %s not reached: %w", pos, err)
		}
	}
}

// Repoint makes n a read-only (semi-sync when in.SemiSync) GTID replica of
// primary and starts replication. read_only goes on first, so n is never
// writable meanwhile. A node that does not replicate (a former primary)
// first takes its own gtid_current_pos as gtid_slave_pos: its slave
// position is stale (its own transactions are only in its binlog), and
// MASTER_USE_GTID=slave_pos would fetch them again from the new primary.
// When n already replicates from primary as wanted, only read_only is
// made sure of.
func (m *Nodes) Repoint(ctx context.Context, in topology.Instance, n, primary topology.Node) error {
	began := time.Now()
	host, port, err := net.SplitHostPort(primary.Address)
	if err != nil {
		return fmt.Errorf("repoint %s: primary address %q: %w", n.ID, primary.Address, err)
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("repoint %s: primary address %q: %w", n.ID, primary.Address, err)
	}
	conn, err := m.session(ctx, in, n)
	if err != nil {
		return fmt.Errorf("repoint %s: %w", n.ID, err)
	}
	defer conn.Close()
	// read_only first, in the same round trip as what the decision below
	// needs to know.
	rows, err := conn.QueryContext(ctx, "SET GLOBAL read_only=ON; SET GLOBAL rpl_semi_sync_master_enabled=OFF; "+
		"SELECT @@rpl_semi_sync_slave_enabled, @@gtid_current_pos, @@gtid_slave_pos; SHOW SLAVE STATUS")
	if err != nil {
		return fmt.Errorf("repoint %s: read only: %w", n.ID, err)
	}
	semi, current, slavePos, st, err := repointState(rows)
	if err != nil {
		return fmt.Errorf("repoint %s: %w", n.ID, err)
	}
	if st != nil && st["Master_Host"] == host && st["Master_Port"] == port &&
		st["Master_User"] == in.Replication.Username && st["Using_Gtid"] == "Slave_Pos" &&
		(semi == 1) == in.SemiSync && st["Slave_IO_Running"] != "No" && st["Slave_SQL_Running"] == "Yes" {
		return nil
	}
	// One round trip: the semi-sync slave side takes effect when the IO
	// thread starts, gtid_slave_pos and CHANGE MASTER need it stopped.
	q := "STOP SLAVE; SET GLOBAL rpl_semi_sync_slave_enabled=" + onOff(in.SemiSync) + "; "
	if st == nil && current != slavePos {
		q += "SET GLOBAL gtid_slave_pos=@@gtid_current_pos; "
	}
	q += "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1; START SLAVE"
	if _, err := conn.ExecContext(ctx, q, host, portNum, in.Replication.Username, in.Replication.Password); err != nil {
		return fmt.Errorf("repoint %s: replicate from %s: %w", n.ID, primary.Address, err)
	}
	m.logger(in, n).Info("node repointed", "primary", primary.ID, "primary_address", primary.Address,
		"from_own_position", st == nil && current != slavePos, "took", time.Since(began))
	return nil
}

// WaitCaughtUp returns once n applied pos.GTID, or ctx ends.
func (m *Nodes) WaitCaughtUp(ctx context.Context, in topology.Instance, n topology.Node, pos topology.Position) error {
	if pos.GTID == "" {
		return nil
	}
	conn, err := m.session(ctx, in, n)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", n.ID, err)
	}
	defer conn.Close()
	if err := m.waitGTID(ctx, conn, pos.GTID); err != nil {
		return fmt.Errorf("wait for %s: %w", n.ID, err)
	}
	return nil
}

// repointState reads the result sets of Repoint's first round trip: the two
// SETs (no rows), the variables, the slave status.
func repointState(rows *sql.Rows) (semi int, current, slavePos string, st map[string]string, err error) {
	defer rows.Close()
	for rows.Err() == nil && len(mustColumns(rows)) == 0 {
		if !rows.NextResultSet() {
			return 0, "", "", nil, fmt.Errorf("read positions: missing result: %w", rows.Err())
		}
	}
	if !rows.Next() {
		return 0, "", "", nil, fmt.Errorf("read positions: %w", rows.Err())
	}
	if err := rows.Scan(&semi, &current, &slavePos); err != nil {
		return 0, "", "", nil, fmt.Errorf("read positions: %w", err)
	}
	if !rows.NextResultSet() {
		return 0, "", "", nil, fmt.Errorf("show slave status: missing result: %w", rows.Err())
	}
	if st, err = scanMap(rows); err != nil {
		return 0, "", "", nil, fmt.Errorf("show slave status: %w", err)
	}
	return semi, current, slavePos, st, rows.Err()
}

func mustColumns(rows *sql.Rows) []string {
	cols, _ := rows.Columns()
	return cols
}
