package nodetest

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/enginetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	if code != 0 {
		panic("nodetest failed")
	}
}

// The cdc account writes with its own session server_id, as a sync job
// does, and the Redis admin user answers.
func TestNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := StartMariaDB(t, 11)
	m.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY)")
	db, err := sql.Open("mysql", CDCUser+":"+CDCPassword+"@tcp("+m.Addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"SET SESSION server_id = 3000000001", "INSERT INTO app.t VALUES (1)"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if p := m.Pos(t); p != "0-3000000001-3" {
		t.Fatalf("gtid_binlog_pos = %q, want the write logged under the session's server id", p)
	}
	r := StartRedis(t)
	if err := r.Client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}
