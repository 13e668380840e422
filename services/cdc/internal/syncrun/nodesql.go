package syncrun

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
)

// nodeDBs keeps one small pool per node for the Manager's own reads (binlog
// positions every status tick, table lists, CREATE TABLE statements), so a
// status tick per second does not cost a new connection.
type nodeDBs struct {
	mu  sync.Mutex
	dbs map[capture.Source]*sql.DB
}

func newNodeDBs() *nodeDBs { return &nodeDBs{dbs: make(map[capture.Source]*sql.DB)} }

func (p *nodeDBs) db(src capture.Source) (*sql.DB, error) {
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
	db.SetMaxOpenConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	p.dbs[src] = db
	return db, nil
}

func (p *nodeDBs) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for src, db := range p.dbs {
		_ = db.Close()
		delete(p.dbs, src)
	}
}

// position reads the node's @@gtid_binlog_pos.
func (p *nodeDBs) position(ctx context.Context, src capture.Source) (string, error) {
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

// tables lists the node's base tables include selects, as "db.table".
func (p *nodeDBs) tables(ctx context.Context, src capture.Source, include func(db, table string) bool) ([]string, error) {
	db, err := p.db(src)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME`)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", src.Addr, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d, t string
		if err := rows.Scan(&d, &t); err != nil {
			return nil, fmt.Errorf("list tables of %s: %w", src.Addr, err)
		}
		if include(d, t) {
			out = append(out, d+"."+t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", src.Addr, err)
	}
	return out, nil
}

// schema returns SHOW CREATE TABLE of db.table on the node.
func (p *nodeDBs) schema(ctx context.Context, src capture.Source, dbName, table string) (string, error) {
	db, err := p.db(src)
	if err != nil {
		return "", err
	}
	var name, stmt string
	q := "SHOW CREATE TABLE " + quoteIdent(dbName) + "." + quoteIdent(table)
	if err := db.QueryRowContext(ctx, q).Scan(&name, &stmt); err != nil {
		return "", fmt.Errorf("show create table %s.%s on %s: %w", dbName, table, src.Addr, err)
	}
	return stmt, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
