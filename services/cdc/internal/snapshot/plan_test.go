package snapshot

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/cdc/internal/envelope"
)

func TestPlan(t *testing.T) {
	fresh := Progress{GTID: "0-1-20", File: "mysql-bin.000002", Pos: 900}
	tests := []struct {
		name   string
		resume *Progress
		tables []string
		want   Progress
	}{
		{
			name:   "first attempt lists the tables",
			tables: []string{"app.a", "app.b"},
			want:   Progress{GTID: "0-1-20", File: "mysql-bin.000002", Pos: 900, Tables: []TableProgress{{Name: "app.a"}, {Name: "app.b"}}},
		},
		{
			name: "resume keeps the first position and the tables' progress, adds new tables, closes dropped ones",
			resume: &Progress{GTID: "0-1-7", File: "mysql-bin.000001", Pos: 300, Attempt: 2, Tables: []TableProgress{
				{Name: "app.a", Done: true, Rows: 10},
				{Name: "app.b", LastKey: []any{"5"}, Rows: 5},
				{Name: "app.gone", LastKey: []any{"1"}, Rows: 1},
			}},
			tables: []string{"app.a", "app.b", "app.c"},
			want: Progress{GTID: "0-1-7", File: "mysql-bin.000001", Pos: 300, Attempt: 3, Tables: []TableProgress{
				{Name: "app.a", Done: true, Rows: 10},
				{Name: "app.b", LastKey: []any{"5"}, Rows: 5},
				{Name: "app.c"},
				{Name: "app.gone", Done: true, Rows: 1},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, plan(fresh, tt.resume, tt.tables))
		})
	}
}

func TestChunkQuery(t *testing.T) {
	tbl := &envelope.Table{DB: "app", Name: "li`nes", Columns: []envelope.Column{
		{Name: "sku", Type: "varchar"}, {Name: "line", Type: "smallint", Key: true}, {Name: "order_id", Type: "int", Key: true},
	}}
	keys := []int{2, 1} // PRIMARY KEY (order_id, line)
	q, args := chunkQuery(tbl, keys, nil, 101)
	require.Equal(t, "SELECT `sku`, `line`, `order_id` FROM `app`.`li``nes` ORDER BY `order_id`, `line` LIMIT 101", q)
	require.Empty(t, args)

	q, args = chunkQuery(tbl, keys, []any{int64(7), int64(2)}, 101)
	require.Equal(t, "SELECT `sku`, `line`, `order_id` FROM `app`.`li``nes` WHERE `order_id` >= ? AND "+
		"((`order_id` > ?) OR (`order_id` = ? AND `line` > ?)) ORDER BY `order_id`, `line` LIMIT 101", q)
	require.Equal(t, []any{int64(7), int64(7), int64(7), int64(2)}, args)
}

func TestKeyTextRoundTrip(t *testing.T) {
	bin := envelope.Column{Name: "b", Type: "varbinary", Binary: true}
	require.Equal(t, map[string]any{"base64": "AP8="}, keyText(bin, []byte{0, 255}))
	require.Equal(t, "abc", keyText(envelope.Column{Name: "s", Type: "varchar"}, []byte("abc")))
	require.Equal(t, map[string]any{"base64": "/w=="}, keyText(envelope.Column{Name: "s", Type: "char"}, []byte{255}), "not UTF-8")
}

func TestKeyArg(t *testing.T) {
	tests := []struct {
		name string
		col  envelope.Column
		in   any
		want any
	}{
		{"signed integer", envelope.Column{Name: "id", Type: "bigint"}, "-42", int64(-42)},
		{"unsigned past int64", envelope.Column{Name: "id", Type: "bigint", Unsigned: true}, "18446744073709551615", uint64(18446744073709551615)},
		{"decimal stays text", envelope.Column{Name: "d", Type: "decimal"}, "12.50", "12.50"},
		{"bytes from base64", envelope.Column{Name: "b", Type: "varbinary", Binary: true}, map[string]any{"base64": "AP8="}, []byte{0, 255}},
		{"number from another encoder", envelope.Column{Name: "id", Type: "int"}, float64(12), int64(12)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keyArg(tt.col, tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
