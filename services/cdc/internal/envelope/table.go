package envelope

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// ErrNoColumnNames is returned by TableFromMap for a table map without
// column names: the source does not log binlog_row_metadata=FULL, and
// guessing names from a schema read now could decode an older event with
// a newer table definition.
var ErrNoColumnNames = errors.New("table map without column names (binlog_row_metadata is not FULL)")

// binaryCollation is the collation id of the binary character set.
const binaryCollation = 63

// TableFromMap builds the table's shape from a rows event's table map,
// logged with binlog_row_metadata=FULL: names, signedness, ENUM/SET
// members, charsets and primary key all come from the binlog itself, so
// they are the definition that was valid when the row was written.
func TableFromMap(db, table string, tme *replication.TableMapEvent) (*Table, error) {
	names := tme.ColumnNameString()
	if len(names) != int(tme.ColumnCount) {
		return nil, fmt.Errorf("table %s.%s: %w", db, table, ErrNoColumnNames)
	}
	unsigned := tme.UnsignedMap()
	collations := tme.CollationMap()
	enums := tme.EnumStrValueMap()
	sets := tme.SetStrValueMap()
	t := &Table{DB: db, Name: table, Columns: make([]Column, tme.ColumnCount)}
	for i := range t.Columns {
		c := &t.Columns[i]
		c.Name = names[i]
		c.Unsigned = unsigned[i]
		if ok, nullable := tme.Nullable(i); ok {
			c.Nullable = nullable
		}
		coll, hasColl := collations[i]
		c.Binary = hasColl && coll == binaryCollation
		typ, meta := tme.ColumnType[i], tme.ColumnMeta[i]
		if typ == mysql.MYSQL_TYPE_STRING && meta >= 256 {
			// CHAR, BINARY, ENUM and SET are all MYSQL_TYPE_STRING in a
			// table map; the real type is in the metadata's high byte.
			if rt := byte(meta >> 8); rt == mysql.MYSQL_TYPE_ENUM || rt == mysql.MYSQL_TYPE_SET {
				typ = rt
			}
		}
		switch typ {
		case mysql.MYSQL_TYPE_TINY:
			c.Type = "tinyint"
		case mysql.MYSQL_TYPE_SHORT:
			c.Type = "smallint"
		case mysql.MYSQL_TYPE_INT24:
			c.Type = "mediumint"
		case mysql.MYSQL_TYPE_LONG:
			c.Type = "int"
		case mysql.MYSQL_TYPE_LONGLONG:
			c.Type = "bigint"
		case mysql.MYSQL_TYPE_NEWDECIMAL:
			c.Type, c.Precision, c.Scale = "decimal", int(meta>>8), int(meta&0xff)
		case mysql.MYSQL_TYPE_FLOAT:
			c.Type = "float"
		case mysql.MYSQL_TYPE_DOUBLE:
			c.Type = "double"
		case mysql.MYSQL_TYPE_BIT:
			c.Type, c.Precision = "bit", int(meta>>8)*8+int(meta&0xff)
		case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
			c.Type = "date"
		case mysql.MYSQL_TYPE_DATETIME:
			c.Type = "datetime"
		case mysql.MYSQL_TYPE_DATETIME2:
			c.Type, c.Precision = "datetime", int(meta)
		case mysql.MYSQL_TYPE_TIMESTAMP:
			c.Type = "timestamp"
		case mysql.MYSQL_TYPE_TIMESTAMP2:
			c.Type, c.Precision = "timestamp", int(meta)
		case mysql.MYSQL_TYPE_TIME:
			c.Type = "time"
		case mysql.MYSQL_TYPE_TIME2:
			c.Type, c.Precision = "time", int(meta)
		case mysql.MYSQL_TYPE_YEAR:
			c.Type = "year"
		case mysql.MYSQL_TYPE_ENUM:
			c.Type, c.Values = "enum", enums[i]
		case mysql.MYSQL_TYPE_SET:
			c.Type, c.Values = "set", sets[i]
		case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
			c.Type = pick(c.Binary, "varbinary", "varchar")
		case mysql.MYSQL_TYPE_STRING:
			c.Type = pick(c.Binary, "binary", "char")
			c.Length = int(meta & 0xff)
			if meta >= 256 {
				// Lengths beyond 255 borrow two bits of the type byte.
				b0 := meta >> 8
				if b0&0x30 != 0x30 {
					c.Length |= int((b0&0x30)^0x30) << 4
				}
			}
		case mysql.MYSQL_TYPE_BLOB:
			// The metadata is the length prefix size: TINY, -, MEDIUM, LONG.
			size := [...]string{"", "tiny", "", "medium", "long"}[min(int(meta), 4)]
			c.Type = size + pick(c.Binary, "blob", "text")
		case mysql.MYSQL_TYPE_JSON:
			c.Type = "json"
		default:
			// Geometry, vector, ...: kept with a type name the mapping
			// refuses, so a row of it is poison rather than a guess.
			c.Type = fmt.Sprintf("binlog-type-%d", typ)
		}
		if (c.Type == "enum" || c.Type == "set") && c.Values == nil {
			return nil, fmt.Errorf("table %s.%s column %s: %s without its values in the table map", db, table, c.Name, c.Type)
		}
	}
	for _, k := range tme.PrimaryKey {
		if int(k) >= len(t.Columns) {
			return nil, fmt.Errorf("table %s.%s: primary key column %d of %d", db, table, k, len(t.Columns))
		}
		t.Columns[k].Key = true
		t.PrimaryKey = append(t.PrimaryKey, int(k))
	}
	return t, nil
}

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// TableFromSchema reads the table's current shape from information_schema,
// for the snapshot. Rows read with it must come from a session with
// time_zone='+00:00' (see FromText).
func TableFromSchema(ctx context.Context, db *sql.DB, schema, table string) (*Table, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(NUMERIC_PRECISION, 0),
		COALESCE(NUMERIC_SCALE, 0), COALESCE(DATETIME_PRECISION, 0), COALESCE(CHARACTER_OCTET_LENGTH, 0), CHARACTER_SET_NAME, IS_NULLABLE, COLUMN_KEY
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	t := &Table{DB: schema, Name: table}
	for rows.Next() {
		var c Column
		var colType, nullable, key string
		var charset sql.NullString
		var numPrec, numScale, dtPrec, octets int
		if err := rows.Scan(&c.Name, &c.Type, &colType, &numPrec, &numScale, &dtPrec, &octets, &charset, &nullable, &key); err != nil {
			return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
		}
		c.Type = strings.ToLower(c.Type)
		colType = strings.ToLower(colType)
		c.Unsigned = strings.Contains(colType, "unsigned")
		c.Nullable = nullable == "YES"
		c.Key = key == "PRI"
		switch c.Type {
		case "decimal", "numeric":
			c.Precision, c.Scale = numPrec, numScale
		case "bit":
			c.Precision = numPrec
		case "datetime", "timestamp", "time":
			c.Precision = dtPrec
		case "enum", "set":
			if c.Values, err = parseValues(colType); err != nil {
				return nil, fmt.Errorf("column %s.%s.%s: %w", schema, table, c.Name, err)
			}
		case "binary":
			c.Binary, c.Length = true, octets
		case "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
			c.Binary = true
		}
		if charset.Valid && charset.String == "binary" {
			c.Binary = true
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
	}
	if len(t.Columns) == 0 {
		return nil, fmt.Errorf("table %s.%s: %w", schema, table, sql.ErrNoRows)
	}
	if t.PrimaryKey, err = primaryKey(ctx, db, t); err != nil {
		return nil, err
	}
	return t, nil
}

// primaryKey returns the primary key's column indexes in key order.
func primaryKey(ctx context.Context, db *sql.DB, t *Table) ([]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, t.DB, t.Name)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s.%s: %w", t.DB, t.Name, err)
	}
	defer rows.Close()
	var pk []int
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("primary key of %s.%s: %w", t.DB, t.Name, err)
		}
		i := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("primary key of %s.%s: column %s not in the table", t.DB, t.Name, name)
		}
		pk = append(pk, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("primary key of %s.%s: %w", t.DB, t.Name, err)
	}
	return pk, nil
}

// parseValues reads the members of "enum('a','b”c')" / "set(...)",
// quotes doubled inside a member.
func parseValues(colType string) ([]string, error) {
	open := strings.IndexByte(colType, '(')
	if open < 0 || !strings.HasSuffix(colType, ")") {
		return nil, fmt.Errorf("column type %q", colType)
	}
	s := colType[open+1 : len(colType)-1]
	var out []string
	for len(s) > 0 {
		if s[0] != '\'' {
			return nil, fmt.Errorf("column type %q", colType)
		}
		var b strings.Builder
		i := 1
		for ; i < len(s); i++ {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				break
			}
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("column type %q: unterminated value", colType)
		}
		out = append(out, b.String())
		s = strings.TrimPrefix(s[i+1:], ",")
	}
	return out, nil
}

// SelectList is the column list a snapshot SELECTs so that FromText sees
// what FromBinlog does: names quoted, and FLOAT read as CAST(... AS
// DOUBLE), since a FLOAT's text is rounded to 6 digits while the binlog
// holds the exact single-precision value (widening to DOUBLE is exact,
// and FromText rounds it back to the same float32).
func (t *Table) SelectList() string {
	var b strings.Builder
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		q := "`" + strings.ReplaceAll(c.Name, "`", "``") + "`"
		if c.kind() == kindFloat {
			b.WriteString("CAST(" + q + " AS DOUBLE) AS " + q)
			continue
		}
		b.WriteString(q)
	}
	return b.String()
}
