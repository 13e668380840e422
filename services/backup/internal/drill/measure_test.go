package drill

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/enginetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// TestMeasureRedis counts a scratch Redis instance's keys over its primary
// with the admin account, and refuses a wrong password.
func TestMeasureRedis(t *testing.T) {
	t.Parallel()
	p := enginetest.Redis(t, adminUser, adminPassword)
	p.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, Username: adminUser, Password: adminPassword})
	defer rdb.Close()
	for i := range 3 {
		if err := rdb.Set(ctx, "k"+strconv.Itoa(i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	in := backup.Instance{ID: "scratch-r", Engine: backup.EngineRedis,
		Nodes: []backup.Node{{ID: "n-1", Role: backup.RolePrimary, Address: p.Addr, Healthy: true}},
		Admin: backup.Credentials{Username: adminUser, Password: adminPassword}}
	got, err := measure(ctx, in, backup.DataStats{Keys: 3}, 10)
	if err != nil || got.Keys != 3 {
		t.Fatalf("measure = %+v, %v; want 3 keys", got, err)
	}
	if m := backup.CompareStats(backup.DataStats{Keys: 4}, got); len(m) != 1 || m[0] != "keys: 4 != 3" {
		t.Fatalf("mismatches %v", m)
	}
	in.Admin.Password = "wrong"
	if _, err := measure(ctx, in, backup.DataStats{}, 10); err == nil {
		t.Fatal("a wrong password measured the instance")
	}
}
