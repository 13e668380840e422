package store

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "defaults with a database", cfg: Config{Database: "canopy_scheduling"}},
		{name: "explicit dsn", cfg: Config{DSN: "u:p@tcp(db:3306)/", Database: "x1"}},
		{name: "missing database", cfg: Config{}, wantErr: true},
		{name: "upper case database", cfg: Config{Database: "Canopy"}, wantErr: true},
		{name: "database with dash", cfg: Config{Database: "canopy-x"}, wantErr: true},
		{name: "database with backtick", cfg: Config{Database: "x`; DROP"}, wantErr: true},
		{name: "database too long", cfg: Config{Database: strings.Repeat("a", 65)}, wantErr: true},
		{name: "dsn names a database", cfg: Config{DSN: "root@tcp(127.0.0.1:3306)/other", Database: "x"}, wantErr: true},
		{name: "dsn enables multiStatements", cfg: Config{DSN: "root@tcp(127.0.0.1:3306)/?multiStatements=true", Database: "x"}, wantErr: true},
		{name: "bad dsn", cfg: Config{DSN: "not a dsn", Database: "x"}, wantErr: true},
		{name: "pool too small", cfg: Config{Database: "x", MaxOpenConns: 1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr != (err != nil) {
				t.Fatalf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestLockName(t *testing.T) {
	short := lockName("canopy_migrate_", "canopy_scheduling")
	if short != "canopy_migrate_canopy_scheduling" {
		t.Fatalf("short name = %q", short)
	}
	a := lockName("canopy_migrate_", strings.Repeat("a", 64))
	b := lockName("canopy_migrate_", strings.Repeat("a", 63)+"b")
	if len(a) > maxLockName || len(b) > maxLockName {
		t.Fatalf("names too long: %d, %d", len(a), len(b))
	}
	if a == b {
		t.Fatalf("distinct databases share lock name %q", a)
	}
}

func TestReadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name      string
		fsys      fstest.MapFS
		wantFiles []string
		wantErr   string
	}{
		{
			name: "sorted by version, others ignored",
			fsys: fstest.MapFS{
				"0010_later.up.sql":    file("SELECT 10"),
				"0002_second.up.sql":   file("SELECT 2"),
				"0002_second.down.sql": file("SELECT -2"),
				"0001_first.up.sql":    file("SELECT 1"),
				"README.md":            file("docs"),
				"sub/0003_x.up.sql":    file("SELECT 3"),
			},
			wantFiles: []string{"0001_first.up.sql", "0002_second.up.sql", "0010_later.up.sql"},
		},
		{name: "empty", fsys: fstest.MapFS{}},
		{name: "bad name", fsys: fstest.MapFS{"1_short.up.sql": file("")}, wantErr: "1_short.up.sql"},
		{name: "no up suffix", fsys: fstest.MapFS{"0001_x.sql": file("")}, wantErr: "0001_x.sql"},
		{
			name:    "duplicate version",
			fsys:    fstest.MapFS{"0001_a.up.sql": file(""), "0001_b.up.sql": file("")},
			wantErr: "same version",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			migs, err := readMigrations(tc.fsys)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrMigration) {
					t.Fatalf("err = %v, want ErrMigration mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readMigrations: %v", err)
			}
			var got []string
			for _, m := range migs {
				got = append(got, m.file)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantFiles, ",") {
				t.Fatalf("files = %v, want %v", got, tc.wantFiles)
			}
		})
	}
}

func TestPlaceholders(t *testing.T) {
	for n, want := range map[int]string{0: "(NULL)", 1: "(?)", 3: "(?,?,?)"} {
		if got := Placeholders(n); got != want {
			t.Errorf("Placeholders(%d) = %q, want %q", n, got, want)
		}
	}
}
