package loadpeer

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The MySQL workloads, sysbench's oltp_point_select and oltp_insert in
// spirit: one autocommit statement per operation on a sysbench-shaped table.
const (
	// PointSelect is SELECT c FROM t WHERE id = ? on a random existing row.
	PointSelect = "point_select"
	// Insert is INSERT INTO t (k, c, pad) VALUES (?, ?, ?), autocommit.
	Insert = "insert"
)

// MySQLOptions shape one MySQLLoad run; zero fields take the defaults noted.
type MySQLOptions struct {
	// Clients is the number of concurrent clients, each on its own
	// connection (default 50).
	Clients int
	// Duration is how long the load runs, after every client has connected
	// and prepared its statement (default 10s).
	Duration time.Duration
	// Kind is PointSelect or Insert.
	Kind string
	// Rows is how many rows the point-select table holds (default 10000).
	Rows int
}

func (o MySQLOptions) withDefaults() MySQLOptions {
	if o.Clients <= 0 {
		o.Clients = 50
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Rows <= 0 {
		o.Rows = 10000
	}
	return o
}

// MySQLLoad runs o.Kind against dsn (a go-sql-driver DSN naming the
// database) for o.Duration with o.Clients clients and returns ops/s and the
// exact p50/p99 of every operation's latency, as "mysql <kind> c<clients>".
// It creates its own table (loadpeer_<random>) before the load and drops it
// after; the user needs CREATE, DROP, INSERT and SELECT on the database.
//
// It is a Go generator rather than Debian's sysbench: it needs nothing
// installed, speaks the same protocol path (server-side prepared
// statements over one connection per client) through every leg, and keeps
// every latency, so the p99 is exact rather than sysbench's histogram
// bucket.
func MySQLLoad(ctx context.Context, dsn string, o MySQLOptions) (Result, error) {
	o = o.withDefaults()
	var query string
	switch o.Kind {
	case PointSelect:
		query = "SELECT c FROM %s WHERE id = ?"
	case Insert:
		query = "INSERT INTO %s (k, c, pad) VALUES (?, ?, ?)"
	default:
		return Result{}, fmt.Errorf("mysql load kind %q: want %q or %q", o.Kind, PointSelect, Insert)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return Result{}, fmt.Errorf("mysql dsn: %w", err)
	}
	// Real prepared statements on the server: the binary protocol every leg
	// must carry, not client-side interpolation.
	cfg.InterpolateParams = false
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return Result{}, fmt.Errorf("mysql connector for %s: %w", cfg.Addr, err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(o.Clients)
	db.SetMaxIdleConns(o.Clients)

	table, err := createTable(ctx, db, o)
	if err != nil {
		return Result{}, fmt.Errorf("mysql at %s: %w", cfg.Addr, err)
	}
	defer func() {
		// Dropped even when ctx ended: the table is ours alone.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(dctx, "DROP TABLE IF EXISTS "+table)
	}()

	clients := make([]*mysqlClient, 0, o.Clients)
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for i := range o.Clients {
		c, err := newMySQLClient(ctx, db, fmt.Sprintf(query, table), o, uint64(i))
		if err != nil {
			return Result{}, fmt.Errorf("mysql at %s: client %d: %w", cfg.Addr, i, err)
		}
		clients = append(clients, c)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	deadline := time.Now().Add(o.Duration)
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ops run on ctx, not runCtx: the deadline must not cancel an
			// operation in flight (the driver would drop the connection).
			if errs[i] = c.run(ctx, runCtx, deadline); errs[i] != nil {
				stop()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Result{}, fmt.Errorf("mysql %s at %s: %w", o.Kind, cfg.Addr, err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("mysql %s at %s: %w", o.Kind, cfg.Addr, err)
	}
	var lat []time.Duration
	for _, c := range clients {
		lat = append(lat, c.lat...)
	}
	if len(lat) == 0 {
		return Result{}, fmt.Errorf("mysql %s at %s: no operation completed in %s", o.Kind, cfg.Addr, o.Duration)
	}
	p50, p99 := summarize(lat)
	return Result{Name: fmt.Sprintf("mysql %s c%d", o.Kind, o.Clients), OpsPerSec: float64(len(lat)) / elapsed.Seconds(), P50: p50, P99: p99}, nil
}

// createTable creates a sysbench-shaped table with a name of its own and,
// for point selects, fills it with o.Rows rows (ids 1..Rows).
func createTable(ctx context.Context, db *sql.DB, o MySQLOptions) (string, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	table := "loadpeer_" + hex.EncodeToString(b[:])
	_, err := db.ExecContext(ctx, "CREATE TABLE "+table+
		" (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB")
	if err != nil {
		return "", fmt.Errorf("create table %s: %w", table, err)
	}
	if o.Kind != PointSelect {
		return table, nil
	}
	const batch = 1000
	for first := 1; first <= o.Rows; first += batch {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + table + " (id, k, c, pad) VALUES ")
		for id := first; id < first+batch && id <= o.Rows; id++ {
			if id > first {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d,%d,'%s','%s')", id, id%997, rowText(uint64(id), 120), rowText(uint64(id)*7, 60))
		}
		if _, err := db.ExecContext(ctx, sb.String()); err != nil {
			_, _ = db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table)
			return "", fmt.Errorf("fill table %s: %w", table, err)
		}
	}
	return table, nil
}

// rowText is n digits derived from seed (the shape of sysbench's c and pad
// columns; only digits, so it is safe to inline in SQL).
func rowText(seed uint64, n int) string {
	r := mrand.New(mrand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

// mysqlClient is one client: its own connection and prepared statement,
// and the latency of each operation it ran.
type mysqlClient struct {
	conn *sql.Conn
	stmt *sql.Stmt
	o    MySQLOptions
	rng  *mrand.Rand
	lat  []time.Duration
}

func newMySQLClient(ctx context.Context, db *sql.DB, query string, o MySQLOptions, seed uint64) (*mysqlClient, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	stmt, err := conn.PrepareContext(ctx, query)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("prepare %q: %w", query, err)
	}
	return &mysqlClient{conn: conn, stmt: stmt, o: o, rng: mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano()))),
		lat: make([]time.Duration, 0, 1<<14)}, nil
}

// run issues operations back to back until deadline or until runCtx ends
// (another client failed); it returns the first failure.
func (c *mysqlClient) run(ctx, runCtx context.Context, deadline time.Time) error {
	c1, pad := rowText(c.rng.Uint64(), 120), rowText(c.rng.Uint64(), 60)
	var got string
	for runCtx.Err() == nil && time.Now().Before(deadline) {
		t0 := time.Now()
		var err error
		switch c.o.Kind {
		case PointSelect:
			err = c.stmt.QueryRowContext(ctx, 1+c.rng.IntN(c.o.Rows)).Scan(&got)
		case Insert:
			_, err = c.stmt.ExecContext(ctx, c.rng.IntN(c.o.Rows), c1, pad)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c.o.Kind, err)
		}
		c.lat = append(c.lat, time.Since(t0))
	}
	return nil
}

func (c *mysqlClient) close() {
	_ = c.stmt.Close()
	_ = c.conn.Close()
}
