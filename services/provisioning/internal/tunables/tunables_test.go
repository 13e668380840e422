package tunables

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		engine  string
		params  map[string]any
		want    map[string]string
		refused []string // parameter names, sorted
		notOK   error
	}{
		{"redis allowed", EngineRedis, map[string]any{"maxmemory-policy": "allkeys-lru", "timeout": float64(30), "lazyfree-lazy-eviction": true, "notify-keyspace-events": ""},
			map[string]string{"maxmemory-policy": "allkeys-lru", "timeout": "30", "lazyfree-lazy-eviction": "yes", "notify-keyspace-events": `""`}, nil, nil},
		{"mysql allowed", EngineMySQL, map[string]any{"max_connections": float64(200), "long_query_time": 0.5, "slow_query_log": true,
			"innodb_buffer_pool_size": "64M", "sql_mode": "strict_trans_tables, NO_ZERO_DATE", "innodb_flush_log_at_trx_commit": float64(2)},
			map[string]string{"max_connections": "200", "long_query_time": "0.5", "slow_query_log": "ON", "innodb_buffer_pool_size": "67108864",
				"sql_mode": "STRICT_TRANS_TABLES,NO_ZERO_DATE", "innodb_flush_log_at_trx_commit": "2"}, nil, nil},
		{"redis loadmodule", EngineRedis, map[string]any{"loadmodule": "/tmp/evil.so"}, nil, []string{"loadmodule"}, ErrNotAllowed},
		{"redis dir and dbfilename", EngineRedis, map[string]any{"dir": "/etc", "dbfilename": "passwd", "timeout": float64(1)}, nil, []string{"dbfilename", "dir"}, ErrNotAllowed},
		{"redis maxmemory is the plan's", EngineRedis, map[string]any{"maxmemory": "10gb"}, nil, []string{"maxmemory"}, ErrNotAllowed},
		{"redis name is exact", EngineRedis, map[string]any{"Timeout": float64(1)}, nil, []string{"Timeout"}, ErrNotAllowed},
		{"mysql plugin_load_add", EngineMySQL, map[string]any{"plugin_load_add": "ha_connect"}, nil, []string{"plugin_load_add"}, ErrNotAllowed},
		{"mysql file paths", EngineMySQL, map[string]any{"general_log_file": "/x", "init_file": "/y", "secure_file_priv": ""}, nil, []string{"general_log_file", "init_file", "secure_file_priv"}, ErrNotAllowed},
		{"mysql dash spelling is not an alias", EngineMySQL, map[string]any{"max-connections": float64(100)}, nil, []string{"max-connections"}, ErrNotAllowed},
		{"mysql redis key", EngineMySQL, map[string]any{"maxmemory-policy": "noeviction"}, nil, []string{"maxmemory-policy"}, ErrNotAllowed},
		{"out of range", EngineMySQL, map[string]any{"max_connections": float64(1)}, nil, []string{"max_connections"}, ErrBadValue},
		{"fraction for integer", EngineRedis, map[string]any{"hz": 1.5}, nil, []string{"hz"}, ErrBadValue},
		{"string for integer", EngineRedis, map[string]any{"timeout": "10; rm -rf"}, nil, []string{"timeout"}, ErrBadValue},
		{"unknown enum", EngineRedis, map[string]any{"maxmemory-policy": "evict-everything"}, nil, []string{"maxmemory-policy"}, ErrBadValue},
		{"newline in pattern", EngineRedis, map[string]any{"notify-keyspace-events": "KE\nloadmodule /x"}, nil, []string{"notify-keyspace-events"}, ErrBadValue},
		{"unknown sql_mode flag", EngineMySQL, map[string]any{"sql_mode": "STRICT_ALL_TABLES,'; DROP"}, nil, []string{"sql_mode"}, ErrBadValue},
		{"size too large", EngineMySQL, map[string]any{"max_allowed_packet": "2G"}, nil, []string{"max_allowed_packet"}, ErrBadValue},
		{"size garbage", EngineMySQL, map[string]any{"tmp_table_size": "12Q"}, nil, []string{"tmp_table_size"}, ErrBadValue},
		{"bool garbage", EngineMySQL, map[string]any{"slow_query_log": "maybe"}, nil, []string{"slow_query_log"}, ErrBadValue},
		{"empty", EngineRedis, nil, map[string]string{}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.engine, tt.params)
			if tt.refused == nil {
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err %v, want Errors", err)
			}
			if got != nil {
				t.Errorf("rendered %v despite errors", got)
			}
			var names []string
			for _, e := range errs {
				names = append(names, e.Name)
			}
			if !reflect.DeepEqual(names, tt.refused) {
				t.Errorf("refused %v, want %v", names, tt.refused)
			}
			if !errors.Is(err, tt.notOK) {
				t.Errorf("err %v is not %v", err, tt.notOK)
			}
		})
	}
}

func TestUnknownEngine(t *testing.T) {
	if _, err := Render("mongodb", map[string]any{"x": 1}); err == nil {
		t.Fatal("unknown engine rendered")
	}
	if Allowed("mongodb", "x") {
		t.Fatal("unknown engine allows a setting")
	}
}

func TestTablesNeverNameFiles(t *testing.T) {
	// The settings that load code or name files must never be tunable.
	never := map[string][]string{
		EngineRedis: {"loadmodule", "dir", "dbfilename", "appendfilename", "logfile", "pidfile", "aclfile", "include", "unixsocket",
			"rename-command", "requirepass", "masterauth", "replicaof", "bind", "port", "maxmemory", "enable-debug-command", "enable-module-command"},
		EngineMySQL: {"plugin_load_add", "plugin_load", "plugin_dir", "init_file", "init_connect", "general_log_file", "slow_query_log_file",
			"log_error", "datadir", "tmpdir", "secure_file_priv", "log_bin", "relay_log", "read_only", "server_id", "local_infile", "skip_grant_tables"},
	}
	for engine, names := range never {
		for _, n := range names {
			if Allowed(engine, n) {
				t.Errorf("%s allows %s", engine, n)
			}
		}
	}
}

func TestDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/provisioning.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	for _, engine := range []string{EngineMySQL, EngineRedis} {
		for _, n := range Names(engine) {
			if !strings.Contains(string(doc), "`"+n+"`") {
				t.Errorf("%s tunable %s is not in docs/provisioning.md", engine, n)
			}
		}
	}
}
