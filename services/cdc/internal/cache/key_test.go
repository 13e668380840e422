package cache

import (
	"errors"
	"testing"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

func TestKey(t *testing.T) {
	t.Parallel()
	users := change.RowChange{DB: "app", Table: "users", Columns: []string{"id", "name"}, Key: []int{0}}
	orders := change.RowChange{DB: "shop", Table: "lines", Columns: []string{"qty", "order_id", "line"}, Key: []int{1, 2}}
	cases := []struct {
		name    string
		pattern string
		rc      change.RowChange
		row     []any
		want    string
		wantErr error
	}{
		{"default pattern", "", users, []any{int64(7), "ann"}, "users:7", nil},
		{"db and table", "{db}.{table}/{pk}", users, []any{uint64(18446744073709551615), "x"}, "app.users/18446744073709551615", nil},
		{"snapshot text equals binlog value", "", users, []any{[]byte("7"), []byte("ann")}, "users:7", nil},
		{"composite key in key order", "{table}:{pk}", orders, []any{int64(3), int64(42), int64(1)}, "lines:42:1", nil},
		{"string key", "c:{pk}", users, []any{"a b", nil}, "c:a b", nil},
		{"no primary key", "", change.RowChange{DB: "app", Table: "log", Columns: []string{"msg"}}, []any{"x"}, "", ErrNoPrimaryKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Key(tc.pattern, tc.rc, tc.row)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Key err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Key = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := Key("", users, []any{nil, "x"}); err == nil {
		t.Fatal("Key of a NULL key value: want an error")
	}
}

func TestJSONRow(t *testing.T) {
	t.Parallel()
	cols := []string{"id", "price", "name", "photo", "flags", "note", "ratio"}
	types := []kind{kindInt, kindDecimal, kindText, kindBinary, kindBit, kindText, kindDouble}
	cases := []struct {
		name  string
		op    string
		row   []any
		kinds []kind
		want  string
	}{
		{"binlog row", "c", []any{int64(1), "9.50", "Zoë", []byte{0xff, 0x00}, uint64(5), nil, float64(0.25)}, nil,
			`{"id":1,"price":"9.50","name":"Zoë","photo":"/wA=","flags":5,"note":null,"ratio":0.25}`},
		{"binlog row with types", "u", []any{int64(1), "9.50", "Zoë", []byte{0xff, 0x00}, uint64(5), nil, float64(0.25)}, types,
			`{"id":1,"price":9.50,"name":"Zoë","photo":"/wA=","flags":5,"note":null,"ratio":0.25}`},
		{"snapshot row without types is text", "r", []any{[]byte("1"), []byte("9.50"), []byte("Zoë"), []byte("ab"), []byte{5}, nil, []byte("0.25")}, nil,
			`{"id":"1","price":"9.50","name":"Zoë","photo":"ab","flags":"\u0005","note":null,"ratio":"0.25"}`},
		{"snapshot row with types matches binlog", "r", normalize([]any{[]byte("1"), []byte("9.50"), []byte("Zoë"), []byte{0xff, 0x00}, []byte{5}, nil, []byte("0.25")}, types), types,
			`{"id":1,"price":9.50,"name":"Zoë","photo":"/wA=","flags":5,"note":null,"ratio":0.25}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := &change.RowChange{Op: tc.op, Columns: cols, Key: []int{0}}
			got, err := jsonRow(rc, tc.row, tc.kinds)
			if err != nil || string(got) != tc.want {
				t.Fatalf("jsonRow = %s, %v\nwant       %s", got, err, tc.want)
			}
		})
	}
}
