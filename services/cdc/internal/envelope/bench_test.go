package envelope

import "testing"

// BenchmarkEncode is the per-row cost of mapping a binlog row and
// encoding its envelope (the capture's CPU share per event).
func BenchmarkEncode(b *testing.B) {
	tbl := &Table{DB: "app", Name: "orders", Columns: []Column{
		{Name: "id", Type: "bigint", Key: true}, {Name: "customer", Type: "varchar"},
		{Name: "amount", Type: "decimal", Precision: 10, Scale: 2}, {Name: "created", Type: "datetime", Precision: 6},
		{Name: "status", Type: "enum", Values: []string{"new", "paid"}},
	}}
	vals := []any{int64(42), "alice@example.com", "123.45", "2024-01-02 03:04:05.123456", int64(2)}
	b.ReportAllocs()
	for b.Loop() {
		r, err := tbl.FromBinlog(vals)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tbl.Key(r); err != nil {
			b.Fatal(err)
		}
		if _, err := (Envelope{After: &r, Op: OpCreate, Source: Source{Version: "v", Connector: "mysql"}}).Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
