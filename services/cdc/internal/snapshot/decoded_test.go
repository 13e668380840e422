package snapshot

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
)

// decodedTypes are the column types capture's tests cover, with a value
// each (written in a '+00:00' session with an empty sql_mode, which lets
// the zero dates in).
var decodedTypes = []struct{ name, colType, literal string }{
	{"decimal", "DECIMAL(10,2)", "-12345.60"},
	{"decimal_wide", "DECIMAL(30,0)", "123456789012345678901234567890"},
	{"datetime0", "DATETIME", "'2024-01-02 03:04:05'"},
	{"datetime6", "DATETIME(6)", "'2024-01-02 03:04:05.123456'"},
	{"timestamp6", "TIMESTAMP(6) NULL", "'2024-01-02 03:04:05.000123'"},
	{"timestamp_zero_not_null", "TIMESTAMP NOT NULL DEFAULT 0", "'0000-00-00 00:00:00'"},
	{"date_zero", "DATE NOT NULL", "'0000-00-00'"},
	{"date", "DATE", "'1969-12-31'"},
	{"time6_negative", "TIME(6)", "'-12:34:56.789'"},
	{"time0_max", "TIME", "'838:59:59'"},
	{"year", "YEAR", "2024"},
	{"json", "JSON", `'{"a": [1, 2], "b": "é"}'`},
	{"blob", "BLOB", "x'00ff10'"},
	{"varbinary", "VARBINARY(10)", "x'0102'"},
	{"binary_padded", "BINARY(4)", "x'0102'"},
	{"enum", "ENUM('a','b','c')", "'b'"},
	{"set", "SET('a','b','c')", "'a,c'"},
	{"bit1", "BIT(1)", "b'1'"},
	{"bit10", "BIT(10)", "b'1000000001'"},
	{"bigint_unsigned_max", "BIGINT UNSIGNED", "18446744073709551615"},
	{"bigint_min", "BIGINT", "-9223372036854775808"},
	{"tinyint_unsigned", "TINYINT UNSIGNED", "255"},
	{"utf8mb4_varchar", "VARCHAR(20) CHARACTER SET utf8mb4", "'😀 ünï'"},
	{"utf8mb4_text", "TEXT CHARACTER SET utf8mb4", "'text 🚀'"},
	{"char", "CHAR(5)", "'ab'"},
	{"float_7_digits", "FLOAT", "1.2345678"},
	{"double_17_digits", "DOUBLE", "0.30000000000000004"},
}

func quoted(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// sessionConn is a connection set up as a sync job's applier session.
func sessionConn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	conn, err := db.Conn(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = conn.ExecContext(context.Background(), "SET SESSION time_zone='+00:00', sql_mode='NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'")
	require.NoError(t, err)
	return conn
}

// rowsText reads a table's rows as text in a '+00:00' session (FLOAT
// widened, as the snapshot reads it) in key order.
func rowsText(t *testing.T, db *sql.DB, schema, name string) []string {
	t.Helper()
	ctx := context.Background()
	tbl, err := envelope.TableFromSchema(ctx, db, schema, name)
	require.NoError(t, err)
	rows, err := sessionConn(t, db).QueryContext(ctx, "SELECT "+tbl.SelectList()+" FROM "+quoted(schema)+"."+quoted(name)+" ORDER BY 1")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(tbl.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "NULL"
			if v != nil {
				parts[i] = fmt.Sprintf("%q", v)
			}
		}
		out = append(out, strings.Join(parts, ","))
	}
	require.NoError(t, rows.Err())
	return out
}

// TestDecodedRoundTrip snapshots a row of every type (and a NULL row) in
// decoded mode and INSERTs the RowChanges' raw values into identical
// tables on a second node: both must SELECT the same. _canopy_sync is
// never read, whatever Include says.
func TestDecodedRoundTrip(t *testing.T) {
	t.Parallel()
	src, dst := nodetest.StartMariaDB(t, 51), nodetest.StartMariaDB(t, 52)
	for _, m := range []*nodetest.MariaDB{src, dst} {
		m.Exec(t, "CREATE DATABASE types")
		for _, c := range decodedTypes {
			m.Exec(t, fmt.Sprintf("CREATE TABLE types.%s (id INT PRIMARY KEY, v %s)", c.name, c.colType))
		}
		m.Exec(t, "CREATE TABLE types.nopk (a INT, b VARCHAR(5))",
			"CREATE TABLE types.comp (a INT, b VARCHAR(5), c INT, PRIMARY KEY (b, a))")
	}
	stmts := []string{"SET SESSION time_zone='+00:00', sql_mode=''",
		"INSERT INTO types.nopk VALUES (1, 'x'), (1, 'x'), (NULL, NULL)", "INSERT INTO types.comp VALUES (1, 'k', 3), (2, 'a', NULL)",
		"CREATE DATABASE _canopy_sync", "CREATE TABLE _canopy_sync.watermarks (id INT PRIMARY KEY)", "INSERT INTO _canopy_sync.watermarks VALUES (1)"}
	for _, c := range decodedTypes {
		if strings.Contains(c.colType, "NOT NULL") {
			stmts = append(stmts, fmt.Sprintf("INSERT INTO types.%s VALUES (1, %s)", c.name, c.literal))
		} else {
			stmts = append(stmts, fmt.Sprintf("INSERT INTO types.%s VALUES (1, %s), (2, NULL)", c.name, c.literal))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := src.Root.Conn(ctx)
	require.NoError(t, err)
	for _, q := range stmts {
		_, err := conn.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	conn.Close()

	cfg := Config{Source: capture.Source{Addr: src.Addr, User: nodetest.CDCUser, Password: nodetest.CDCPassword}, Decoded: true,
		Include: func(db, _ string) bool { return db == "types" || db == "_canopy_sync" }, ChunkSize: 1}
	final, err, batches := drive(ctx, cfg, nil, all)
	require.NoError(t, err)
	require.Equal(t, src.Pos(t), final.GTID)
	apply := sessionConn(t, dst.Root)
	seen := map[string]int{}
	for _, b := range batches {
		for _, m := range b.Messages {
			rc := m.Change
			require.NotNil(t, rc, "decoded message without a change: %+v", m)
			require.Nil(t, m.Value)
			require.Nil(t, m.Key)
			require.Equal(t, final.GTID, m.GTID)
			require.Equal(t, "types", rc.DB, "only the included tables, never _canopy_sync")
			require.Equal(t, "r", rc.Op)
			require.Nil(t, rc.Before)
			switch rc.Table {
			case "nopk":
				require.Empty(t, rc.Key)
			case "comp":
				require.Equal(t, []string{"a", "b", "c"}, rc.Columns)
				require.Equal(t, []int{1, 0}, rc.Key, "the key in key order")
			default:
				require.Equal(t, []string{"id", "v"}, rc.Columns)
				require.Equal(t, []int{0}, rc.Key)
			}
			// Integers as the binlog gives them (a key reads alike loaded
			// or streamed), the rest as the text SELECT returned.
			for _, v := range rc.After {
				switch v.(type) {
				case nil, []byte, int64, uint64:
				default:
					t.Fatalf("%s: value %#v of type %T", rc.Table, v, v)
				}
			}
			if rc.Table != "nopk" && rc.Table != "comp" {
				require.IsType(t, int64(0), rc.After[0], "the integer key")
			}
			seen[rc.Table]++
			q := "INSERT INTO types." + quoted(rc.Table) + " VALUES (?" + strings.Repeat(", ?", len(rc.After)-1) + ")"
			_, err := apply.ExecContext(ctx, q, rc.After...)
			require.NoError(t, err, "%s %v", q, rc.After)
		}
	}
	for _, c := range append(decodedTypes, struct{ name, colType, literal string }{name: "nopk"}, struct{ name, colType, literal string }{name: "comp"}) {
		t.Run(c.name, func(t *testing.T) {
			a, b := rowsText(t, src.Root, "types", c.name), rowsText(t, dst.Root, "types", c.name)
			require.NotEmpty(t, a)
			require.Equal(t, a, b, "source and target differ")
			require.Equal(t, len(a), seen[c.name], "one message per row")
		})
	}
}
