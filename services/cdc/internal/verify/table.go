package verify

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrNoPrimaryKey is wrapped when a table to verify has no primary key:
// chunks and rows are addressed by it.
var ErrNoPrimaryKey = errors.New("table has no primary key")

// kind is how a key column's values travel as query arguments and JSON.
type kind int

const (
	kindText kind = iota
	kindSigned
	kindUnsigned
	kindBinary
	kindNumber // DECIMAL, FLOAT, DOUBLE: a JSON number, a text argument
)

type column struct {
	name     string
	kind     kind
	nullable bool
	float    bool // FLOAT: read through DOUBLE to keep its exact value
	stamp    bool // TIMESTAMP
	virtual  bool // generated: never written by a repair
}

// table is a verified table's shape, read from the source, and the SQL
// built from it once.
type table struct {
	db, name string
	// tdb is the target's database of the table (the same name unless the
	// job maps the source's database to another).
	tdb     string
	cols    []column
	key     []column
	charset string // of the row text the checksum hashes

	from     string // `db`.`name` FORCE INDEX (PRIMARY)
	keyList  string // `k1`, `k2`
	rowCRC   string // CRC32(CONCAT_WS(...)) of a row
	chunkSQL string // SELECT COUNT(*), BIT_XOR(row CRC × key factor) FROM … without WHERE
	rowsSQL  string // SELECT keys, crc FROM … without WHERE
}

func quote(id string) string { return "`" + strings.ReplaceAll(id, "`", "``") + "`" }

// loadTable reads db.name's columns and primary key from the source.
func loadTable(ctx context.Context, db *sql.DB, qualified string) (*table, error) {
	dbName, name, ok := strings.Cut(qualified, ".")
	if !ok || dbName == "" || name == "" {
		return nil, fmt.Errorf("table %q: want db.table", qualified)
	}
	t := &table{db: dbName, name: name}
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA,
		COALESCE(CHARACTER_SET_NAME, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, dbName, name)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", qualified, err)
	}
	byName := map[string]column{}
	charsets := map[string]bool{}
	for rows.Next() {
		var cname, dataType, colType, nullable, extra, charset string
		if err := rows.Scan(&cname, &dataType, &colType, &nullable, &extra, &charset); err != nil {
			rows.Close()
			return nil, fmt.Errorf("columns of %s: %w", qualified, err)
		}
		c := column{name: cname, kind: kindOf(dataType, colType), nullable: nullable == "YES",
			float: strings.EqualFold(dataType, "float"), stamp: strings.EqualFold(dataType, "timestamp"), virtual: strings.Contains(strings.ToUpper(extra), "GENERATED")}
		t.cols = append(t.cols, c)
		byName[cname] = c
		if charset != "" {
			charsets[charset] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s: %w", qualified, err)
	}
	if len(t.cols) == 0 {
		return nil, fmt.Errorf("table %s: not found on the source", qualified)
	}
	krows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, dbName, name)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", qualified, err)
	}
	for krows.Next() {
		var cname string
		if err := krows.Scan(&cname); err != nil {
			krows.Close()
			return nil, fmt.Errorf("primary key of %s: %w", qualified, err)
		}
		t.key = append(t.key, byName[cname])
	}
	krows.Close()
	if err := krows.Err(); err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", qualified, err)
	}
	if len(t.key) == 0 {
		return nil, fmt.Errorf("verify %s: %w", qualified, ErrNoPrimaryKey)
	}
	// The row's text is built in the character set of its text columns:
	// a separator in another one (the connection's) would make MariaDB
	// convert every value of every row, which doubles the checksum's cost.
	t.charset = "utf8mb4" // lossless for any mix
	if len(charsets) == 0 {
		t.charset = "latin1"
	} else if len(charsets) == 1 {
		for cs := range charsets {
			t.charset = cs
		}
	}
	t.build()
	return t, nil
}

func kindOf(dataType, colType string) kind {
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		if strings.Contains(strings.ToLower(colType), "unsigned") {
			return kindUnsigned
		}
		return kindSigned
	case "decimal", "float", "double":
		return kindNumber
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit":
		return kindBinary
	}
	return kindText
}

func (t *table) String() string { return t.db + "." + t.name }

// on returns q, built for the source, for side (0 source, 1 target): the
// target's table may live in another database.
func (t *table) on(side int, q string) string {
	if side == 0 || t.tdb == t.db {
		return q
	}
	return strings.Replace(q, t.from, quote(t.tdb)+"."+quote(t.name)+" FORCE INDEX (PRIMARY)", 1)
}

func (t *table) build() {
	t.from = quote(t.db) + "." + quote(t.name) + " FORCE INDEX (PRIMARY)"
	if t.tdb == "" {
		t.tdb = t.db
	}
	keys := make([]string, len(t.key))
	for i, k := range t.key {
		keys[i] = quote(k.name)
	}
	t.keyList = strings.Join(keys, ", ")
	// CONCAT_WS skips NULLs, so NULL and a missing value would hash alike:
	// the nullable columns' NULL flags tell them apart, as bits of one
	// integer per 62 columns (an argument per flag costs a few percent
	// more per row, a nested CONCAT of the flags a quarter).
	parts := make([]string, 0, len(t.cols)+1)
	var flags []string
	nullable := 0
	for _, c := range t.cols {
		expr := quote(c.name)
		if c.stamp {
			// The epoch seconds a TIMESTAMP holds, exact (fractions
			// included) and without the time zone conversion its text
			// costs.
			expr = "UNIX_TIMESTAMP(" + expr + ")"
		}
		parts = append(parts, expr)
		if c.nullable {
			f := "ISNULL(" + quote(c.name) + ")"
			if bit := nullable % 62; bit == 0 {
				flags = append(flags, f)
			} else {
				flags[len(flags)-1] += " | " + f + " << " + strconv.Itoa(bit)
			}
			nullable++
		}
	}
	parts = append(parts, flags...)
	sep := "_" + t.charset + "'#'"
	t.rowCRC = "CRC32(CONCAT_WS(" + sep + ", " + strings.Join(parts, ", ") + "))"
	// CRC32 is affine over GF(2), so a BIT_XOR of row CRCs cannot see two
	// rows swap values of equal length (status 'paid' and 'done'): their
	// XOR stays the same. Multiplying each row's CRC by an odd factor from
	// its key mixes through the carries and breaks that for about a
	// twentieth more per row; the product of two 32-bit values fits
	// BIGINT UNSIGNED.
	keyText := "CONCAT_WS(" + sep + ", " + t.keyList + ")" // text in the row's character set on both sides
	if len(t.key) == 1 && (t.key[0].kind == kindSigned || t.key[0].kind == kindUnsigned) {
		keyText = t.keyList
	}
	t.chunkSQL = "SELECT COUNT(*), COALESCE(BIT_XOR(" + t.rowCRC + " * (CRC32(" + keyText + ") | 1)), 0) FROM " + t.from
	t.rowsSQL = "SELECT " + t.keyList + ", " + t.rowCRC + " FROM " + t.from
}

// cmp is the predicate "key > k" (greater) or "key <= k", written as
// nested OR/AND of single columns so that MariaDB's range optimizer turns
// it into index ranges: a row constructor comparison would be a scan.
func (t *table) cmp(k []any, greater bool) (string, []any) {
	op, last := "<", "<="
	if greater {
		op, last = ">", ">"
	}
	var expr string
	for i := len(t.key) - 1; i >= 0; i-- {
		c := quote(t.key[i].name)
		if i == len(t.key)-1 {
			expr = c + " " + last + " ?"
			continue
		}
		expr = "(" + c + " " + op + " ? OR (" + c + " = ? AND " + expr + "))"
	}
	// Arguments in the order the placeholders appear.
	var args []any
	for i := 0; i < len(t.key)-1; i++ {
		args = append(args, k[i], k[i])
	}
	args = append(args, k[len(k)-1])
	if len(t.key) == 1 {
		return expr, args
	}
	// A leading single-column bound gives the optimizer a range even if it
	// gives up on the OR tree.
	first := quote(t.key[0].name)
	lead := first + " >= ?"
	if !greater {
		lead = first + " <= ?"
	}
	return lead + " AND " + expr, append([]any{k[0]}, args...)
}

// where is the predicate of the chunk (lo, hi]; nil bounds are open.
func (t *table) where(lo, hi []any) (string, []any) {
	var conds []string
	var args []any
	if lo != nil {
		s, a := t.cmp(lo, true)
		conds, args = append(conds, s), append(args, a...)
	}
	if hi != nil {
		s, a := t.cmp(hi, false)
		conds, args = append(conds, s), append(args, a...)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// keyEq is the predicate selecting exactly one row by its key.
func (t *table) keyEq() string {
	parts := make([]string, len(t.key))
	for i, c := range t.key {
		parts[i] = quote(c.name) + " = ?"
	}
	return " WHERE " + strings.Join(parts, " AND ")
}

// keyArgs turns scanned key text into query arguments typed so that the
// comparison stays exact: integers as integers (a string would be compared
// as DOUBLE, losing precision past 2^53), binary as bytes, text as text.
func (t *table) keyArgs(raw [][]byte) ([]any, error) {
	out := make([]any, len(raw))
	for i, b := range raw {
		switch t.key[i].kind {
		case kindSigned:
			v, err := strconv.ParseInt(string(b), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("key %s of %s: %w", t.key[i].name, t, err)
			}
			out[i] = v
		case kindUnsigned:
			v, err := strconv.ParseUint(string(b), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("key %s of %s: %w", t.key[i].name, t, err)
			}
			out[i] = v
		case kindBinary:
			out[i] = append([]byte(nil), b...)
		default:
			out[i] = string(b)
		}
	}
	return out, nil
}

// keyJSON is a key as the JSON object users and conflicts see: numbers as
// numbers, text as strings, binary that is not UTF-8 as {"base64": …}.
func (t *table) keyJSON(k []any) json.RawMessage {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, c := range t.key {
		if i > 0 {
			sb.WriteByte(',')
		}
		name, _ := json.Marshal(c.name)
		sb.Write(name)
		sb.WriteByte(':')
		var v []byte
		switch x := k[i].(type) {
		case int64:
			v = strconv.AppendInt(nil, x, 10)
		case uint64:
			v = strconv.AppendUint(nil, x, 10)
		case []byte:
			if utf8.Valid(x) {
				v, _ = json.Marshal(string(x))
			} else {
				v, _ = json.Marshal(map[string]string{"base64": base64.StdEncoding.EncodeToString(x)})
			}
		case string:
			if c.kind == kindNumber && json.Valid([]byte(x)) {
				v = []byte(x)
			} else {
				v, _ = json.Marshal(x)
			}
		}
		sb.Write(v)
	}
	sb.WriteByte('}')
	return json.RawMessage(sb.String())
}

// keyID identifies a key within one table (map key for the row diff).
func keyID(k []any) string {
	var sb strings.Builder
	for _, v := range k {
		s := fmt.Sprint(v)
		if b, ok := v.([]byte); ok {
			s = string(b)
		}
		sb.WriteString(strconv.Itoa(len(s)))
		sb.WriteByte(':')
		sb.WriteString(s)
	}
	return sb.String()
}
