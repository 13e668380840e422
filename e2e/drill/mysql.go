package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQLAuth is the binding user a MySQL store or prober connects as.
type MySQLAuth struct {
	Username, Password, Database string
}

// mysqlPools keeps one small pool per node address.
type mysqlPools struct {
	auth MySQLAuth
	mu   sync.Mutex
	by   map[string]*sql.DB
}

func (m *mysqlPools) get(addr string) (*sql.DB, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if db, ok := m.by[addr]; ok {
		return db, nil
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = m.auth.Username, m.auth.Password, "tcp", addr, m.auth.Database
	// A dead node must fail a write in milliseconds; a commit may wait
	// for the semi-sync acknowledgement, so reads get longer.
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 100*time.Millisecond, 5*time.Second, time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql connector for %s: %w", addr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	if m.by == nil {
		m.by = map[string]*sql.DB{}
	}
	m.by[addr] = db
	return db, nil
}

// drop closes and forgets the pool of addr after a failure, so the next
// attempt dials afresh.
func (m *mysqlPools) drop(addr string) {
	m.mu.Lock()
	db, ok := m.by[addr]
	delete(m.by, addr)
	m.mu.Unlock()
	if ok {
		_ = db.Close()
	}
}

func (m *mysqlPools) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, db := range m.by {
		errs = append(errs, db.Close())
	}
	m.by = nil
	return errors.Join(errs...)
}

// MySQLTable is the table the MySQL store writes: one row per write,
// keyed by the drill's label and the record's number.
const MySQLTable = "bench_failover"

// MySQLStore writes record seq as one INSERT (autocommit): acknowledged
// when the commit returned OK, which on a semi-sync primary means a replica
// has the transaction.
type MySQLStore struct {
	label string
	pools mysqlPools
}

// NewMySQLStore returns a store writing rows labelled label (one per drill).
func NewMySQLStore(auth MySQLAuth, label string) *MySQLStore {
	return &MySQLStore{label: label, pools: mysqlPools{auth: auth}}
}

var _ Store = (*MySQLStore)(nil)

// CreateTable creates the store's table on the primary at addr if missing.
func (s *MySQLStore) CreateTable(ctx context.Context, addr string) error {
	db, err := s.pools.get(addr)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+MySQLTable+
		" (label VARCHAR(32) NOT NULL, seq BIGINT NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (label, seq)) ENGINE=InnoDB")
	if err != nil {
		return fmt.Errorf("create table %s on %s: %w", MySQLTable, addr, err)
	}
	return nil
}

// Write inserts one row.
func (s *MySQLStore) Write(ctx context.Context, addr string, seq int64) error {
	db, err := s.pools.get(addr)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO "+MySQLTable+" (label, seq) VALUES (?, ?)", s.label, seq); err != nil {
		s.pools.drop(addr)
		return fmt.Errorf("insert on %s: %w", addr, err)
	}
	return nil
}

// Missing reads the drill's rows back.
func (s *MySQLStore) Missing(ctx context.Context, addr string, seqs []int64) ([]int64, error) {
	db, err := s.pools.get(addr)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT seq FROM "+MySQLTable+" WHERE label = ?", s.label)
	if err != nil {
		return nil, fmt.Errorf("read rows on %s: %w", addr, err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var q int64
		if err := rows.Scan(&q); err != nil {
			return nil, err
		}
		have[q] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rows on %s: %w", addr, err)
	}
	var missing []int64
	for _, q := range seqs {
		if !have[q] {
			missing = append(missing, q)
		}
	}
	return missing, nil
}

// Close closes the store's pools.
func (s *MySQLStore) Close() error { return s.pools.Close() }

// MySQLProber calls a node writable when it answers and its read_only is
// off: the binding user has no privilege that bypasses read_only.
type MySQLProber struct {
	pools mysqlPools
}

// NewMySQLProber returns a prober connecting as auth.
func NewMySQLProber(auth MySQLAuth) *MySQLProber { return &MySQLProber{pools: mysqlPools{auth: auth}} }

var _ Prober = (*MySQLProber)(nil)

// Writable reports whether the node at addr answers with read_only off.
func (p *MySQLProber) Writable(ctx context.Context, addr string) bool {
	db, err := p.pools.get(addr)
	if err != nil {
		return false
	}
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		p.pools.drop(addr)
		return false
	}
	return ro == 0
}

// Close closes the prober's pools.
func (p *MySQLProber) Close() error { return p.pools.Close() }
