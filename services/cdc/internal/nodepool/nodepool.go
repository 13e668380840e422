// Package nodepool keeps one small connection pool per tenant node for the
// cdc service's own short reads (binlog positions every status tick, table
// lists, table definitions), so a tick per second does not cost a new
// connection.
package nodepool

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
)

// Pool holds the pools by node and account.
type Pool struct {
	maxOpen int
	mu      sync.Mutex
	dbs     map[capture.Source]*sql.DB
}

// New returns an empty Pool whose node pools open at most maxOpen
// connections each.
func New(maxOpen int) *Pool { return &Pool{maxOpen: maxOpen, dbs: make(map[capture.Source]*sql.DB)} }

// DB returns src's pool, opening it on first use.
func (p *Pool) DB(src capture.Source) (*sql.DB, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db, ok := p.dbs[src]; ok {
		return db, nil
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = src.User, src.Password, "tcp", src.Addr
	cfg.Timeout, cfg.ReadTimeout = 3*time.Second, 10*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connector for %s: %w", src.Addr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(p.maxOpen)
	db.SetConnMaxIdleTime(time.Minute)
	p.dbs[src] = db
	return db, nil
}

// Position reads src's @@gtid_binlog_pos.
func (p *Pool) Position(ctx context.Context, src capture.Source) (string, error) {
	db, err := p.DB(src)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var pos string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return "", fmt.Errorf("read gtid_binlog_pos of %s: %w", src.Addr, err)
	}
	return pos, nil
}

// Close closes every pool.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for src, db := range p.dbs {
		_ = db.Close()
		delete(p.dbs, src)
	}
}
