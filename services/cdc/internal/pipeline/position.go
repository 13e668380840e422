package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
)

// PositionFunc returns the source's @@gtid_binlog_pos: how far its binlog
// goes, for lag_events and "caught up".
type PositionFunc func(ctx context.Context, src capture.Source) (string, error)

// positions polls sources' binlog positions over one small pool per node,
// so a status tick per second does not cost a new connection.
type positions struct {
	mu  sync.Mutex
	dbs map[capture.Source]*sql.DB
}

func newPositions() *positions { return &positions{dbs: make(map[capture.Source]*sql.DB)} }

func (p *positions) position(ctx context.Context, src capture.Source) (string, error) {
	db, err := p.db(src)
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

func (p *positions) db(src capture.Source) (*sql.DB, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db, ok := p.dbs[src]; ok {
		return db, nil
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = src.User, src.Password, "tcp", src.Addr
	cfg.Timeout, cfg.ReadTimeout = 3*time.Second, 5*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connector for %s: %w", src.Addr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(time.Minute)
	p.dbs[src] = db
	return db, nil
}

func (p *positions) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for src, db := range p.dbs {
		_ = db.Close()
		delete(p.dbs, src)
	}
}
