package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
)

// tableDDL matches the statements that change a table's shape; anything
// else in a query event (GRANT, CREATE USER, views, routines, database
// DDL) changes no captured table and is not published.
var tableDDL = regexp.MustCompile(`(?is)^\s*(?:/\*.*?\*/\s*)*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\s+` +
	`(?:OR\s+REPLACE\s+)?(?:ONLINE\s+|IGNORE\s+|TEMPORARY\s+)*TABLE\s+` +
	`(?:IF\s+(?:NOT\s+)?EXISTS\s+)?((?:` + ident + `\s*\.\s*)?` + ident + `(?:\s*,\s*(?:` + ident + `\s*\.\s*)?` + ident + `)*)`)

const ident = "(?:`(?:[^`]|``)+`|[A-Za-z0-9_$]+)"

var qualified = regexp.MustCompile(`(?:(` + ident + `)\s*\.\s*)?(` + ident + `)`)

// tableRef is one table a DDL statement names.
type tableRef struct{ db, table string }

// parseDDL returns the Debezium change type and the tables a table DDL
// statement names (defaultDB fills unqualified names); ok is false for
// statements that are not table DDL.
func parseDDL(stmt, defaultDB string) (typ string, tables []tableRef, ok bool) {
	m := tableDDL.FindStringSubmatch(stmt)
	if m == nil {
		return "", nil, false
	}
	switch strings.ToUpper(m[1]) {
	case "CREATE":
		typ = "CREATE"
	case "DROP":
		typ = "DROP"
	default: // ALTER, RENAME, TRUNCATE
		typ = "ALTER"
	}
	list := m[2]
	if typ != "DROP" {
		// Only DROP names a list; RENAME's "a TO b" stops at the first.
		list = qualified.FindString(list)
	}
	for _, q := range qualified.FindAllStringSubmatch(list, -1) {
		ref := tableRef{db: unquote(q[1]), table: unquote(q[2])}
		if ref.db == "" {
			ref.db = defaultDB
		}
		tables = append(tables, ref)
	}
	return typ, tables, len(tables) > 0
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '`' {
		return strings.ReplaceAll(s[1:len(s)-1], "``", "`")
	}
	return s
}

// schemaChange is the value on <prefix>.schema-changes, Debezium's shape.
type schemaChange struct {
	Source       envelope.Source `json:"source"`
	TsMs         int64           `json:"ts_ms"`
	DatabaseName string          `json:"databaseName"`
	SchemaName   *string         `json:"schemaName"`
	DDL          string          `json:"ddl"`
	TableChanges []tableChange   `json:"tableChanges"`
}

type tableChange struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// ddl records and publishes a table DDL on captured tables.
func (r *reader) ddl(ctx context.Context, ev *replication.BinlogEvent, e *replication.QueryEvent, stmt string) error {
	if r.skip {
		// A sync job's own DDL replay coming back.
		return nil
	}
	typ, refs, ok := parseDDL(stmt, string(e.Schema))
	if !ok {
		return nil
	}
	var included []tableRef
	for _, ref := range refs {
		if ref.db != "" && r.cfg.Include(ref.db, ref.table) {
			included = append(included, ref)
		}
	}
	if len(included) == 0 {
		return nil
	}
	db := included[0].db
	at := time.Unix(int64(ev.Header.Timestamp), 0)
	if r.cfg.OnDDL != nil {
		for _, ref := range included {
			d := DDL{GTID: r.gtidStr, DB: ref.db, Table: ref.table, Statement: stmt, At: at}
			if err := r.cfg.OnDDL(ctx, d); err != nil {
				return fmt.Errorf("record DDL at %s: %w", r.gtidStr, err)
			}
		}
	}
	if r.cfg.Decoded {
		// One message for the statement, however many tables it names:
		// it is replayed once. DB and Table name its first captured
		// table; unqualified names in the statement are in that DB
		// unless the statement mixes databases.
		sc := &change.SchemaChange{DB: db, Table: included[0].table, Statement: stmt}
		return r.emit(ctx, change.Message{Topic: r.cfg.Prefix + ".schema-changes", GTID: r.gtidStr, Row: r.row, EventTime: at,
			Schema: sc, ServerID: r.serverID})
	}
	sc := schemaChange{Source: r.source(ev, db, included[0].table), TsMs: time.Now().UnixMilli(), DatabaseName: db, DDL: stmt}
	for _, ref := range included {
		sc.TableChanges = append(sc.TableChanges, tableChange{Type: typ, ID: fmt.Sprintf("%q.%q", ref.db, ref.table)})
	}
	val, err := json.Marshal(sc)
	if err != nil {
		return fmt.Errorf("schema change at %s: %w", r.gtidStr, err)
	}
	key, err := json.Marshal(map[string]string{"databaseName": db})
	if err != nil {
		return err
	}
	return r.emit(ctx, change.Message{Topic: r.cfg.Prefix + ".schema-changes", Key: key, Value: val, GTID: r.gtidStr, Row: r.row, EventTime: at,
		ServerID: r.serverID})
}
