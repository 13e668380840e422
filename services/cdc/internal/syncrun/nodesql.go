package syncrun

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodepool"
)

// nodeDBs is the Manager's own reads of a node (binlog positions every
// status tick, table lists, CREATE TABLE statements) over one small pool
// per node.
type nodeDBs struct{ *nodepool.Pool }

func newNodeDBs() *nodeDBs { return &nodeDBs{nodepool.New(2)} }

func (p *nodeDBs) db(src capture.Source) (*sql.DB, error) { return p.DB(src) }

func (p *nodeDBs) position(ctx context.Context, src capture.Source) (string, error) {
	return p.Position(ctx, src)
}

func (p *nodeDBs) close() { p.Close() }

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
