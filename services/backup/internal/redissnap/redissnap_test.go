package redissnap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/enginetest"
)

const (
	adminUser     = "admin"
	adminPassword = "redis-secret-1"
)

// startRedis runs a redis-server with an admin user, no automatic saves.
func startRedis(t *testing.T) (*enginetest.Proc, *goredis.Client) {
	t.Helper()
	p := enginetest.Redis(t, adminUser, adminPassword)
	p.Start()
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr, Username: adminUser, Password: adminPassword, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return p, c
}

// A snapshot taken while another save runs holds every key; a scratch
// server loading it counts the same keys; a damaged file does not load.
func TestSnapshotInspect(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, c := startRedis(t)
	pipe := c.Pipeline()
	for i := range 5000 {
		pipe.Set(ctx, fmt.Sprintf("k:%d", i), strings.Repeat("v", 100), 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	db1 := goredis.NewClient(&goredis.Options{Addr: p.Addr, Username: adminUser, Password: adminPassword, DB: 1, DisableIdentity: true})
	defer db1.Close()
	for i := range 7 {
		if err := db1.Set(ctx, fmt.Sprintf("other:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's save is running; the keys written after it started
	// must still be in ours.
	if err := c.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "late", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "snap.rdb")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Snapshot(ctx, Source{Address: p.Addr, DataDir: p.Dir, User: adminUser, Password: adminPassword}, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(out)
	if res.Keys != 5008 || res.DataBytes != st.Size() || res.DataBytes == 0 || res.ConsistentAt.IsZero() {
		t.Fatalf("snapshot result %+v (file %d bytes)", res, st.Size())
	}
	keys, err := Inspect(ctx, "", enginetest.TempDir(t), out)
	if err != nil {
		t.Fatal(err)
	}
	if keys != 5008 {
		t.Fatalf("scratch server loaded %d keys, want 5008", keys)
	}

	t.Run("damaged snapshot", func(t *testing.T) {
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "bad.rdb")
		if err := os.WriteFile(bad, b[:len(b)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Inspect(ctx, "", enginetest.TempDir(t), bad); err == nil {
			t.Fatal("a truncated RDB loaded")
		} else if !strings.Contains(err.Error(), "does not load") {
			t.Fatalf("truncated RDB: %v", err)
		}
	})
	t.Run("missing redis-server", func(t *testing.T) {
		_, err := Inspect(ctx, "/nonexistent/redis-server", t.TempDir(), out)
		if err == nil || !strings.Contains(err.Error(), "Debian package redis-server") {
			t.Fatalf("missing redis-server: %v", err)
		}
	})
}
