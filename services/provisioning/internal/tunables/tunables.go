// Package tunables is the allowlist of engine settings a tenant may set
// through instance parameters: one table per engine naming each setting and
// the values it accepts. Anything not in a table never reaches an engine, so
// settings that load code or touch the file system (loadmodule, dir,
// dbfilename, plugin_load_add, init_file, general_log_file, ...) cannot be
// set by a tenant whatever the plan's parameter schema says. It does not
// cover the settings the platform itself gives a node (tuning profile,
// driver-managed options).
package tunables

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Engines, as instance.Plan.Engine names them.
const (
	EngineMySQL = "mysql"
	EngineRedis = "redis"
)

// ErrNotAllowed: the setting is not in the engine's allowlist.
var ErrNotAllowed = errors.New("not a tunable setting")

// ErrBadValue: the setting is allowed but the value is not.
var ErrBadValue = errors.New("invalid value")

// FieldError names one rejected parameter.
type FieldError struct {
	Name   string
	Reason string
	Err    error // ErrNotAllowed or ErrBadValue
}

// Error reports the parameter and why.
func (e *FieldError) Error() string { return fmt.Sprintf("parameter %s: %s", e.Name, e.Reason) }

// Unwrap returns ErrNotAllowed or ErrBadValue.
func (e *FieldError) Unwrap() error { return e.Err }

// Errors are every rejected parameter of one request, sorted by name.
type Errors []*FieldError

// Error joins the parameter errors.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.Is see ErrNotAllowed / ErrBadValue.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// value renders a JSON parameter value as the engine's text, or says why not.
type value func(v any) (string, error)

// tunable is one allowed setting.
type tunable struct {
	name  string
	value value
}

// mysqlTable are the MariaDB/MySQL settings a tenant may set (SET GLOBAL
// at runtime, my.cnf at node creation). Sizes are rendered in bytes so that
// SET GLOBAL accepts them.
var mysqlTable = []tunable{
	{"max_connections", intRange(10, 100000)},
	{"max_connect_errors", intRange(1, 1<<32)},
	{"wait_timeout", intRange(1, 31536000)},
	{"interactive_timeout", intRange(1, 31536000)},
	{"net_read_timeout", intRange(1, 31536000)},
	{"net_write_timeout", intRange(1, 31536000)},
	{"lock_wait_timeout", intRange(1, 31536000)},
	{"innodb_lock_wait_timeout", intRange(1, 1073741824)},
	{"long_query_time", floatRange(0, 3600)},
	{"slow_query_log", onOff},
	{"log_queries_not_using_indexes", onOff},
	{"innodb_buffer_pool_size", size(5<<20, 1<<40)},
	{"innodb_flush_log_at_trx_commit", enum("0", "1", "2")},
	{"max_allowed_packet", size(1<<10, 1<<30)},
	{"tmp_table_size", size(1<<10, 1<<36)},
	{"max_heap_table_size", size(16<<10, 1<<36)},
	{"table_open_cache", intRange(1, 1048576)},
	{"character_set_server", enum("utf8mb4", "utf8mb3", "utf8", "latin1")},
	{"sql_mode", setOf(sqlModes...)},
}

// sqlModes are the sql_mode flags MariaDB 10.11 and MySQL 8 share.
var sqlModes = []string{
	"ALLOW_INVALID_DATES", "ANSI_QUOTES", "ERROR_FOR_DIVISION_BY_ZERO", "HIGH_NOT_PRECEDENCE",
	"IGNORE_SPACE", "NO_AUTO_VALUE_ON_ZERO", "NO_BACKSLASH_ESCAPES", "NO_ENGINE_SUBSTITUTION",
	"NO_UNSIGNED_SUBTRACTION", "NO_ZERO_DATE", "NO_ZERO_IN_DATE", "ONLY_FULL_GROUP_BY",
	"PAD_CHAR_TO_FULL_LENGTH", "PIPES_AS_CONCAT", "REAL_AS_FLOAT", "STRICT_ALL_TABLES",
	"STRICT_TRANS_TABLES", "TIME_TRUNCATE_FRACTIONAL", "TRADITIONAL", "ANSI",
}

// redisTable are the Redis settings a tenant may set (CONFIG SET at
// runtime, redis.conf at node creation). maxmemory is not here: the driver
// derives it from the plan's memory, and raising it is a plan change.
var redisTable = []tunable{
	{"maxmemory-policy", enum("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
		"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")},
	{"maxmemory-samples", intRange(1, 64)},
	{"timeout", intRange(0, 86400)},
	{"tcp-keepalive", intRange(0, 7200)},
	{"hz", intRange(1, 500)},
	{"notify-keyspace-events", pattern(`^[KEg$lshzxetmdnA]{0,32}$`)},
	{"slowlog-log-slower-than", intRange(-1, 3600000000)},
	{"slowlog-max-len", intRange(0, 1000000)},
	{"latency-monitor-threshold", intRange(0, 3600000)},
	{"lazyfree-lazy-eviction", yesNo},
	{"lazyfree-lazy-expire", yesNo},
	{"lazyfree-lazy-server-del", yesNo},
	{"lazyfree-lazy-user-del", yesNo},
}

func table(engine string) ([]tunable, error) {
	switch engine {
	case EngineMySQL:
		return mysqlTable, nil
	case EngineRedis:
		return redisTable, nil
	}
	return nil, fmt.Errorf("tunables: unknown engine %q", engine)
}

// Names lists the engine's tunable settings in table order (for docs and
// error messages).
func Names(engine string) []string {
	t, _ := table(engine)
	out := make([]string, len(t))
	for i, tu := range t {
		out[i] = tu.name
	}
	return out
}

// Allowed reports whether name is a tunable setting of engine.
func Allowed(engine, name string) bool {
	t, _ := table(engine)
	for _, tu := range t {
		if tu.name == name {
			return true
		}
	}
	return false
}

// Render checks every parameter against the engine's allowlist and returns
// them as engine settings (name → engine text). Rejected parameters come
// back as Errors, one per parameter, and nothing is rendered.
func Render(engine string, params map[string]any) (map[string]string, error) {
	t, err := table(engine)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]value, len(t))
	for _, tu := range t {
		byName[tu.name] = tu.value
	}
	out := make(map[string]string, len(params))
	var errs Errors
	for name, v := range params {
		check, ok := byName[name]
		if !ok {
			errs = append(errs, &FieldError{Name: name, Reason: "is not a setting tenants may change", Err: ErrNotAllowed})
			continue
		}
		s, err := check(v)
		if err != nil {
			errs = append(errs, &FieldError{Name: name, Reason: err.Error(), Err: ErrBadValue})
			continue
		}
		out[name] = s
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Name < errs[j].Name })
		return nil, errs
	}
	return out, nil
}

// --- value checks ---

// number returns v as a float64 when it is a JSON number (or a Go integer).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func intRange(lo, hi int64) value {
	return func(v any) (string, error) {
		f, ok := number(v)
		if !ok || f != math.Trunc(f) {
			return "", errors.New("must be an integer")
		}
		if f < float64(lo) || f > float64(hi) {
			return "", fmt.Errorf("must be between %d and %d", lo, hi)
		}
		return strconv.FormatInt(int64(f), 10), nil
	}
}

func floatRange(lo, hi float64) value {
	return func(v any) (string, error) {
		f, ok := number(v)
		if !ok || math.IsNaN(f) {
			return "", errors.New("must be a number")
		}
		if f < lo || f > hi {
			return "", fmt.Errorf("must be between %g and %g", lo, hi)
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
}

// boolean accepts a JSON boolean or the engine's own words for it.
func boolean(yes, no string) value {
	return func(v any) (string, error) {
		switch x := v.(type) {
		case bool:
			if x {
				return yes, nil
			}
			return no, nil
		case string:
			switch strings.ToLower(x) {
			case strings.ToLower(yes), "true":
				return yes, nil
			case strings.ToLower(no), "false":
				return no, nil
			}
		}
		return "", fmt.Errorf("must be a boolean, %s or %s", yes, no)
	}
}

var (
	onOff = boolean("ON", "OFF")
	yesNo = boolean("yes", "no")
)

func enum(allowed ...string) value {
	return func(v any) (string, error) {
		s, ok := v.(string)
		if f, isNum := number(v); isNum && f == math.Trunc(f) {
			s, ok = strconv.FormatInt(int64(f), 10), true
		}
		if ok {
			for _, a := range allowed {
				if s == a {
					return s, nil
				}
			}
		}
		return "", fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func pattern(expr string) value {
	re := regexp.MustCompile(expr)
	return func(v any) (string, error) {
		s, ok := v.(string)
		if !ok || !re.MatchString(s) {
			return "", fmt.Errorf("must match %s", expr)
		}
		if s == "" {
			// An empty value must survive a config file line and CONFIG SET.
			return `""`, nil
		}
		return s, nil
	}
}

// setOf accepts a comma-separated list of known flags (sql_mode); the empty
// list is allowed.
func setOf(flags ...string) value {
	known := make(map[string]bool, len(flags))
	for _, f := range flags {
		known[f] = true
	}
	return func(v any) (string, error) {
		s, ok := v.(string)
		if !ok {
			return "", errors.New("must be a comma-separated list of flags")
		}
		var out []string
		for _, f := range strings.Split(s, ",") {
			f = strings.ToUpper(strings.TrimSpace(f))
			if f == "" {
				continue
			}
			if !known[f] {
				return "", fmt.Errorf("unknown flag %q", f)
			}
			out = append(out, f)
		}
		return strings.Join(out, ","), nil
	}
}

// sizeSuffix multiplies a K/M/G suffix.
var sizeSuffix = map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}

// size accepts bytes as an integer or a string with a K, M or G suffix and
// renders bytes, which both SET GLOBAL and my.cnf accept.
func size(lo, hi int64) value {
	return func(v any) (string, error) {
		var n int64
		switch x := v.(type) {
		case string:
			s := strings.ToUpper(strings.TrimSpace(x))
			mult := int64(1)
			if s != "" {
				if m, ok := sizeSuffix[s[len(s)-1]]; ok {
					mult, s = m, s[:len(s)-1]
				}
			}
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil || i < 0 || i > hi/mult {
				return "", fmt.Errorf("must be a size between %d and %d bytes (K, M, G suffixes allowed)", lo, hi)
			}
			n = i * mult
		default:
			f, ok := number(v)
			if !ok || f != math.Trunc(f) || f > float64(hi) {
				return "", fmt.Errorf("must be a size between %d and %d bytes (K, M, G suffixes allowed)", lo, hi)
			}
			n = int64(f)
		}
		if n < lo || n > hi {
			return "", fmt.Errorf("must be a size between %d and %d bytes (K, M, G suffixes allowed)", lo, hi)
		}
		return strconv.FormatInt(n, 10), nil
	}
}
