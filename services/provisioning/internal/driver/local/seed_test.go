package local

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/drivertest"
)

// seedFrom copies a stopped node's data directory to a new seed directory
// under root, as a restore job leaves one.
func seedFrom(t *testing.T, root string, spec driver.NodeSpec) string {
	t.Helper()
	seed := filepath.Join(root, "seeds", spec.NodeID)
	if err := os.MkdirAll(filepath.Dir(seed), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(filepath.Join(nodeDir(spec), "data"), seed); err != nil {
		t.Fatalf("copy %s's data dir to the seed: %v", spec.NodeID, err)
	}
	return seed
}

// A MariaDB node created from a seed (a stopped node's data directory) has
// the seed's tables and rows, and Canopy's accounts answer to the new
// instance's passwords, not the source's.
func TestCreateMySQLFromSeed(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := dataRoot(t)
	d := newDriver(t, Config{StopTimeout: 20 * time.Second})

	src := drivertest.Specs("seeda", driver.EngineMySQL, "", root, func() int { return freePort(t) })[0]
	if _, err := d.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	sn, err := d.Start(ctx, src.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ConfigurePrimary(ctx, src.NodeID, driver.PrimaryOpts{}); err != nil {
		t.Fatal(err)
	}
	db := drivertest.OpenMySQL(sn.Address, src.Admin, src.Database)
	for _, q := range []string{"CREATE TABLE orders (id INT PRIMARY KEY, what VARCHAR(20))", "INSERT INTO orders VALUES (1, 'tea'), (2, 'cake'), (3, 'jam')"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	if err := d.Stop(ctx, src.NodeID); err != nil {
		t.Fatal(err)
	}
	seed := seedFrom(t, root, src)

	spec := drivertest.Specs("seedb", driver.EngineMySQL, "", root, func() int { return freePort(t) })[0]
	spec.Seed = seed
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n, err := d.Start(ctx, spec.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	db = drivertest.OpenMySQL(n.Address, spec.Admin, src.Database)
	defer db.Close()
	var count int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE what IN ('tea', 'cake', 'jam')").Scan(&count); err != nil {
		t.Fatalf("read the seed's rows with the new admin password: %v", err)
	}
	if count != 3 {
		t.Fatalf("restored node has %d of the seed's 3 rows", count)
	}
	old := drivertest.OpenMySQL(n.Address, src.Admin, "")
	defer old.Close()
	if err := old.PingContext(ctx); err == nil {
		t.Fatal("the source's admin password still opens the restored node")
	}
}

// A Redis node created from a seed directory with dump.rdb has its keys,
// with AOF on (the default: Redis would ignore a bare RDB) and off.
func TestCreateRedisFromSeed(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	tests := []struct {
		name     string
		settings map[string]string
	}{
		{"appendonly yes", nil},
		{"appendonly no", map[string]string{"appendonly": "no"}},
	}
	root := dataRoot(t)
	seed := filepath.Join(root, "seed")
	if err := os.MkdirAll(seed, 0o700); err != nil {
		t.Fatal(err)
	}
	makeRDB(t, root, seed)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := seededRedis(t, ctx, newDriver(t, Config{}), root, "seedr"+string(rune('a'+i)), seed, tc.settings)
			got, err := c.MGet(ctx, "k1", "k2").Result()
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != "v1" || got[1] != "v2" {
				t.Fatalf("restored node has k1=%v k2=%v, want v1 v2", got[0], got[1])
			}
		})
	}
}

// A Redis node created from an AOF seed (aof/base.rdb and aof/incr.aof, a
// restore to the second) has the base's keys and the incr's commands; a
// plan without AOF cannot load one.
func TestCreateRedisFromAOFSeed(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	root := dataRoot(t)
	seed := filepath.Join(root, "aofseed")
	if err := os.MkdirAll(filepath.Join(seed, "aof"), 0o700); err != nil {
		t.Fatal(err)
	}
	makeRDB(t, root, seed)
	if err := os.Rename(filepath.Join(seed, "dump.rdb"), filepath.Join(seed, "aof", "base.rdb")); err != nil {
		t.Fatal(err)
	}
	incr := "#TS:1764700000\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$2\r\nk3\r\n$2\r\nv3\r\n*2\r\n$3\r\ndel\r\n$2\r\nk1\r\n"
	if err := os.WriteFile(filepath.Join(seed, "aof", "incr.aof"), []byte(incr), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := newDriver(t, Config{})
	c := seededRedis(t, ctx, d, root, "seedaof", seed, nil)
	got, err := c.MGet(ctx, "k1", "k2", "k3").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != nil || got[1] != "v2" || got[2] != "v3" {
		t.Fatalf("restored node has k1=%v k2=%v k3=%v, want none, v2, v3", got[0], got[1], got[2])
	}

	off := drivertest.Specs("seedaofoff", driver.EngineRedis, "", root, func() int { return freePort(t) })[0]
	off.Seed, off.Settings = seed, map[string]string{"appendonly": "no"}
	if _, err := d.Create(ctx, off); !driver.IsSpecError(err) {
		t.Fatalf("an AOF seed on a node without AOF: err = %v, want a spec error", err)
	}
}

// seededRedis creates and starts a Redis node named name from seed (with
// settings) and returns a client of its admin; the node is destroyed at
// the end of the test.
func seededRedis(t *testing.T, ctx context.Context, d *Driver, root, name, seed string, settings map[string]string) *goredis.Client {
	t.Helper()
	spec := drivertest.Specs(name, driver.EngineRedis, "", root, func() int { return freePort(t) })[0]
	spec.Seed, spec.Settings = seed, settings
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n, err := d.Start(ctx, spec.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: n.Address, Username: spec.Admin.Username, Password: spec.Admin.Password, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// makeRDB writes keys k1, k2 through a Redis node and leaves its snapshot
// in seed/dump.rdb.
func makeRDB(t *testing.T, root, seed string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := newDriver(t, Config{})
	src := drivertest.Specs("seedrs", driver.EngineRedis, "", root, func() int { return freePort(t) })[0]
	t.Cleanup(func() { _ = d.Destroy(context.Background(), src.NodeID) })
	if _, err := d.Create(ctx, src); err != nil {
		t.Fatal(err)
	}
	sn, err := d.Start(ctx, src.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.ConfigurePrimary(ctx, src.NodeID, driver.PrimaryOpts{}); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: sn.Address, Username: src.Admin.Username, Password: src.Admin.Password, DisableIdentity: true})
	defer c.Close()
	if err := c.MSet(ctx, "k1", "v1", "k2", "v2").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(nodeDir(src), "data", "dump.rdb"), filepath.Join(seed, "dump.rdb"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A seed that does not exist, or a Redis seed without dump.rdb, is an
// invalid spec: retrying cannot help.
func TestCreateFromMissingSeed(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	root := dataRoot(t)
	empty := filepath.Join(root, "empty")
	if err := os.MkdirAll(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		engine driver.Engine
		seed   string
	}{
		{"mysql seed missing", driver.EngineMySQL, filepath.Join(root, "nope")},
		{"redis seed missing", driver.EngineRedis, filepath.Join(root, "nope")},
		{"redis seed without dump.rdb", driver.EngineRedis, empty},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			d := newDriver(t, Config{})
			spec := drivertest.Specs("seedm"+string(rune('a'+i)), tc.engine, "", root, func() int { return freePort(t) })[0]
			spec.Seed = tc.seed
			_, err := d.Create(ctx, spec)
			if !driver.IsSpecError(err) {
				t.Fatalf("create from %s: err = %v, want a spec error", tc.seed, err)
			}
			if _, serr := os.Stat(nodeDir(spec)); !os.IsNotExist(serr) {
				t.Fatalf("failed create left %s behind", nodeDir(spec))
			}
		})
	}
}
