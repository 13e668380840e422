package cache

import (
	"database/sql"
	"math"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

// A row as the initial load reads it from a real MariaDB (text) and the
// same row as the binlog gives it (typed values) are cached identically,
// in both formats, once the source's column types are known.
func TestLoadTextMatchesBinlogValues(t *testing.T) {
	t.Parallel()
	m := nodetest.StartMariaDB(t, 21)
	m.Exec(t, "CREATE DATABASE app",
		"CREATE TABLE app.t (id INT(3) ZEROFILL PRIMARY KEY, u BIGINT UNSIGNED, f FLOAT, d1 DOUBLE, d2 DOUBLE, d3 DOUBLE,"+
			" dec1 DECIMAL(5,2), b BIT(10), vb VARBINARY(4), s VARCHAR(10), n INT NULL, y YEAR) CHARSET utf8mb4",
		"INSERT INTO app.t VALUES (7, 18446744073709551615, 0.1, 1e20, 1e-5, 123456.789, 9.5, b'1000000001', 0xff00, 'Zoë', NULL, 2024)")
	src, err := sql.Open("mysql", nodetest.CDCUser+":"+nodetest.CDCPassword+"@tcp("+m.Addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := ctxT(t)

	// The load's read: text protocol, every value []byte, NULL nil.
	rows, err := src.QueryContext(ctx, "SELECT * FROM app.t")
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	text := make([]any, len(cols))
	for i, b := range raw {
		if b != nil {
			text[i] = append([]byte{}, b...)
		}
	}
	rows.Close()
	typed := []any{uint64(7), uint64(math.MaxUint64), float32(0.1), 1e20, 1e-5, 123456.789, "9.50", uint64(0x201),
		[]byte{0xff, 0x00}, "Zoë", nil, int64(2024)}

	r := nodetest.StartRedis(t)
	for _, f := range []syncjob.Format{syncjob.FormatHash, syncjob.FormatJSON} {
		for _, side := range []struct {
			prefix, op string
			row        []any
		}{{"load:", "r", text}, {"binlog:", "c", typed}} {
			c := open(t, r, func(cfg *Config) {
				cfg.Format = f
				cfg.KeyPattern = string(f) + ":" + side.prefix + "{pk}"
				cfg.ColumnTypes = ColumnTypesFrom(src)
			})
			apply(t, c, batch("0-21-1", change.Message{GTID: "0-21-1", Change: &change.RowChange{
				DB: "app", Table: "t", Op: side.op, Columns: cols, Key: []int{0}, After: side.row}}))
		}
	}
	d := dump(t, r.Client)
	for _, f := range []string{"hash", "json"} {
		load, binlog := d[f+":load:7"], d[f+":binlog:7"]
		if load == nil || binlog == nil {
			t.Fatalf("%s: keys %v, want %s:load:7 and %s:binlog:7", f, d, f, f)
		}
		if !equalValues(load, binlog) {
			t.Errorf("%s: the load wrote\n%v\nthe binlog\n%v", f, load, binlog)
		}
	}
	want := `{"id":7,"u":18446744073709551615,"f":0.1,"d1":1e+20,"d2":1e-05,"d3":123456.789,"dec1":9.50,"b":513,` +
		`"vb":"/wA=","s":"Zoë","n":null,"y":2024}`
	if got := d["json:binlog:7"]; got != want {
		t.Errorf("json row = %v\nwant       %s", got, want)
	}
}

func equalValues(a, b any) bool {
	if ha, ok := a.(map[string]string); ok {
		hb, ok := b.(map[string]string)
		if !ok || len(ha) != len(hb) {
			return false
		}
		for k, v := range ha {
			if hb[k] != v {
				return false
			}
		}
		return true
	}
	return a == b
}
