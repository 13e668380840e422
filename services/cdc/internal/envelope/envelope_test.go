package envelope

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

func TestRowMarshalKeepsColumnOrder(t *testing.T) {
	r := Row{Names: []string{"z", "a", "m"}, Values: []any{json.Number("1"), "x", nil}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"z":1,"a":"x","m":null}` {
		t.Fatalf("got %s", b)
	}
	env, err := json.Marshal(Envelope{After: &r, Op: OpCreate})
	if err != nil {
		t.Fatal(err)
	}
	var back struct{ After json.RawMessage }
	json.Unmarshal(env, &back)
	if string(back.After) != string(b) {
		t.Fatalf("envelope after %s", back.After)
	}
}

func TestKey(t *testing.T) {
	tbl := &Table{DB: "d", Name: "t", Columns: []Column{{Name: "a", Type: "int", Key: true}, {Name: "b", Type: "varchar"}, {Name: "c", Type: "int", Key: true}}}
	r, err := tbl.FromText([][]byte{[]byte("1"), []byte("x"), []byte("3")})
	if err != nil {
		t.Fatal(err)
	}
	k, err := tbl.Key(r)
	if err != nil || string(k) != `{"a":1,"c":3}` {
		t.Fatalf("key %s, %v", k, err)
	}
	noKey := &Table{DB: "d", Name: "t", Columns: []Column{{Name: "b", Type: "varchar"}}}
	r, _ = noKey.FromText([][]byte{[]byte("x")})
	if k, err := noKey.Key(r); k != nil || err != nil {
		t.Fatalf("table without a key: %s, %v", k, err)
	}
}

func TestValues(t *testing.T) {
	cases := []struct {
		name string
		col  Column
		bin  any
		text string
		want string
	}{
		{"bit10 little-endian", Column{Type: "bit", Precision: 10}, int64(0x201), "\x02\x01", `"AQI="`},
		{"bit1", Column{Type: "bit", Precision: 1}, int64(0), "\x00", `false`},
		{"bigint unsigned", Column{Type: "bigint", Unsigned: true}, int64(-1), "18446744073709551615", `18446744073709551615`},
		{"tinyint unsigned", Column{Type: "tinyint", Unsigned: true}, int8(-1), "255", `255`},
		{"enum", Column{Type: "enum", Values: []string{"a", "b"}}, int64(2), "b", `"b"`},
		{"set", Column{Type: "set", Values: []string{"a", "b", "c"}}, int64(5), "a,c", `"a,c"`},
		{"negative time", Column{Type: "time", Precision: 1}, "-00:00:01.5", "-00:00:01.5", `-1500000`},
		{"datetime(4) micro", Column{Type: "datetime", Precision: 4}, "1970-01-01 00:00:01.0001", "1970-01-01 00:00:01.0001", `1000100`},
		{"timestamp(3)", Column{Type: "timestamp", Precision: 3}, "2024-01-02 03:04:05.120", "2024-01-02 03:04:05.120", `"2024-01-02T03:04:05.120Z"`},
		{"binary text", Column{Type: "varbinary", Binary: true}, "\x00\xff", "\x00\xff", `"AP8="`},
		{"float32", Column{Type: "float"}, float32(0.25), "0.25", `0.25`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.col.Name = "v"
			tbl := &Table{Columns: []Column{c.col}}
			rb, err := tbl.FromBinlog([]any{c.bin})
			if err != nil {
				t.Fatal(err)
			}
			rt, err := tbl.FromText([][]byte{[]byte(c.text)})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(rb)
			x, _ := json.Marshal(rt)
			if want := `{"v":` + c.want + `}`; string(b) != want || string(x) != want {
				t.Fatalf("binlog %s, text %s, want %s", b, x, want)
			}
		})
	}
}

func TestUnsupportedIsAValueError(t *testing.T) {
	tbl := &Table{Columns: []Column{{Name: "g", Type: "geometry"}}}
	_, err := tbl.FromBinlog([]any{[]byte{1}})
	var ve *ValueError
	if !errors.As(err, &ve) || ve.Column != "g" || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v", err)
	}
}

func TestParseValues(t *testing.T) {
	got, err := parseValues(`enum('a','b''c','d,e','')`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b'c", "d,e", ""}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestTableFromMapNeedsFullMetadata(t *testing.T) {
	tme := &replication.TableMapEvent{ColumnCount: 1, ColumnType: []byte{mysql.MYSQL_TYPE_LONG}, ColumnMeta: []uint16{0}}
	if _, err := TableFromMap("d", "t", tme); !errors.Is(err, ErrNoColumnNames) {
		t.Fatalf("got %v", err)
	}
	tme.ColumnName = [][]byte{[]byte("id")}
	tme.PrimaryKey = []uint64{0}
	tbl, err := TableFromMap("d", "t", tme)
	if err != nil || tbl.Columns[0].Name != "id" || tbl.Columns[0].Type != "int" || !tbl.Columns[0].Key {
		t.Fatalf("got %+v, %v", tbl, err)
	}
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	thread, query := int64(7), "q<&>"
	r := Row{Names: []string{"id", "s", "f", "u", "b"}, Values: []any{int64(-3), "é\"\\<\n", float32(1.5), json.Number("18446744073709551615"), true}}
	for _, e := range []Envelope{
		{Before: &r, After: &r, Op: OpUpdate, TsMs: 5, Source: Source{Version: "v", Connector: "mysql", Name: "n", TsMs: 1, Snapshot: "false", DB: "d", Table: "t", ServerID: 4294967295, GTID: "0-1-2", File: "f", Pos: 4, Row: 3}},
		{After: &r, Op: OpRead, Source: Source{Thread: &thread, Query: &query}},
	} {
		type plain Envelope // same fields, no MarshalJSON
		want, err := json.Marshal(plain(e))
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("Encode\n%s\nencoding/json\n%s", got, want)
		}
	}
}

// SQLFromBinlog gives values that bind as the stored value: unsigned
// integers read back from go-mysql's signed ones, ENUM/SET members for
// indexes and masks, BIT as a number, BINARY(n) padded back, text as text.
func TestSQLFromBinlog(t *testing.T) {
	tbl := &Table{DB: "d", Name: "t", Columns: []Column{
		{Name: "id", Type: "int", Key: true},
		{Name: "u8", Type: "tinyint", Unsigned: true},
		{Name: "u64", Type: "bigint", Unsigned: true},
		{Name: "e", Type: "enum", Values: []string{"a", "b"}},
		{Name: "e0", Type: "enum", Values: []string{"a", "b"}},
		{Name: "s", Type: "set", Values: []string{"a", "b", "c"}},
		{Name: "bits", Type: "bit", Precision: 10},
		{Name: "bin", Type: "binary", Binary: true, Length: 4},
		{Name: "txt", Type: "text"},
		{Name: "dt", Type: "datetime", Precision: 6},
		{Name: "dec", Type: "decimal"},
		{Name: "f", Type: "float"},
		{Name: "y", Type: "year"},
		{Name: "n", Type: "varchar", Nullable: true},
	}}
	got, err := tbl.SQLFromBinlog([]any{int32(-5), int8(-1), int64(-1), int64(2), int64(0), int64(5), int64(0x201), "\x01\x02",
		[]byte("é"), "2024-01-02 03:04:05.000001", "-1.50", float32(1.5), int(2024), nil})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{int64(-5), uint64(255), uint64(18446744073709551615), "b", "", "a,c", uint64(0x201), []byte{1, 2, 0, 0},
		"é", "2024-01-02 03:04:05.000001", "-1.50", float32(1.5), int64(2024), nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
	if names := tbl.ColumnNames(); len(names) != 14 || names[0] != "id" || names[13] != "n" {
		t.Fatalf("names %v", names)
	}
	if k := tbl.KeyIndexes(); !reflect.DeepEqual(k, []int{0}) {
		t.Fatalf("key %v", k)
	}
	tbl.PrimaryKey = []int{2, 0}
	if k := tbl.KeyIndexes(); !reflect.DeepEqual(k, []int{2, 0}) {
		t.Fatalf("key in key order %v", k)
	}
	for name, tc := range map[string]struct {
		col Column
		v   any
	}{
		"geometry":          {Column{Name: "g", Type: "binlog-type-255"}, []byte{1}},
		"enum out of range": {Column{Name: "e", Type: "enum", Values: []string{"a"}}, int64(2)},
		"set beyond":        {Column{Name: "s", Type: "set", Values: []string{"a"}}, int64(2)},
		"int as text":       {Column{Name: "i", Type: "int"}, "1"},
	} {
		bad := &Table{DB: "d", Name: "t", Columns: []Column{tc.col}}
		_, err := bad.SQLFromBinlog([]any{tc.v})
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Column != tc.col.Name {
			t.Errorf("%s: err %v, want a ValueError on %s", name, err, tc.col.Name)
		}
	}
	if _, err := tbl.SQLFromBinlog([]any{1}); err == nil {
		t.Error("a row of the wrong width was mapped")
	}
}
