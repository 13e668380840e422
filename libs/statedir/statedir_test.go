package statedir

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsure(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		wantLogs bool
	}{
		{"new dir", func(*testing.T, string) {}, false},
		{"already private", func(t *testing.T, dir string) {
			mustMkdir(t, filepath.Join(dir, "kafka"), 0o700)
			mustWrite(t, filepath.Join(dir, "secrets.key"), 0o600)
		}, false},
		{"looser modes from an older run", func(t *testing.T, dir string) {
			mustMkdir(t, dir, 0o755)
			mustMkdir(t, filepath.Join(dir, "kafka", "topic-0"), 0o755)
			mustWrite(t, filepath.Join(dir, "kafka", "topic-0", "00000.log"), 0o644)
			if err := os.Chmod(filepath.Join(dir, "kafka"), 0o750); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(dir, "secrets.key"), 0o644)
			mustWrite(t, filepath.Join(dir, "mysqld"), 0o755)
			if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("unix", filepath.Join(dir, "server.sock"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state", ".canopy")
			tt.setup(t, dir)
			var logs bytes.Buffer
			if err := Ensure(dir, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
				t.Fatal(err)
			}
			loose, err := Loose(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(loose) > 0 {
				t.Fatalf("loose after Ensure: %s", strings.Join(loose, ", "))
			}
			if got := logs.Len() > 0; got != tt.wantLogs {
				t.Fatalf("logged %q, want a line: %v", logs.String(), tt.wantLogs)
			}
			if fi, err := os.Stat(filepath.Join(dir, "mysqld")); err == nil && fi.Mode().Perm() != 0o700 {
				t.Fatalf("owner bits not kept: %s", fi.Mode().Perm())
			}
		})
	}
}

func TestTightenLeavesSymlinkTargets(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside")
	mustWrite(t, outside, 0o644)
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Tighten(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o644 {
		t.Fatalf("symlink target changed to %s", fi.Mode().Perm())
	}
}

func mustMkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureOwned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".canopy")
	mustMkdir(t, dir, 0o755)
	mustWrite(t, filepath.Join(dir, "secrets.key"), 0o644)
	mustMkdir(t, filepath.Join(dir, "nodes", "n0"), 0o755)
	mustWrite(t, filepath.Join(dir, "nodes", "n0", "redis.conf"), 0o644)
	mustMkdir(t, filepath.Join(dir, "kafka"), 0o755)
	mustWrite(t, filepath.Join(dir, "kafka", "segment"), 0o644)
	var logs bytes.Buffer
	if err := EnsureOwned(dir, slog.New(slog.NewTextHandler(&logs, nil)), "secrets.key", "nodes", "templates"); err != nil {
		t.Fatal(err)
	}
	loose, err := Loose(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "kafka") + " (-rwxr-xr-x)", filepath.Join(dir, "kafka", "segment") + " (-rw-r--r--)"}
	if strings.Join(loose, ",") != strings.Join(want, ",") {
		t.Fatalf("loose = %v, want only another component's %v", loose, want)
	}
	if !strings.Contains(logs.String(), "paths=5") {
		t.Fatalf("log = %q, want paths=5", logs.String())
	}
}
