package syncrun

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/nodetest"
)

// The Manager's own reads of a node, against a real MariaDB with the cdc
// account: the binlog position, the synced tables (never the watermarks'
// schema) and a table's CREATE statement.
func TestNodeSQL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := nodetest.StartMariaDB(t, 21)
	n.Exec(t, "CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(10))",
		"CREATE TABLE app.u (id INT PRIMARY KEY)", "CREATE VIEW app.vw AS SELECT id FROM app.t",
		"CREATE DATABASE other", "CREATE TABLE other.x (id INT PRIMARY KEY)",
		"CREATE DATABASE _canopy_sync", "CREATE TABLE _canopy_sync.watermarks (id INT PRIMARY KEY)",
		"INSERT INTO app.t VALUES (1, 'a')")
	src := capture.Source{Addr: n.Addr, User: nodetest.CDCUser, Password: nodetest.CDCPassword}
	dbs := newNodeDBs()
	defer dbs.close()

	pos, err := dbs.position(ctx, src)
	if err != nil || pos != n.Pos(t) {
		t.Fatalf("position %q (%v), want %q", pos, err, n.Pos(t))
	}
	got, err := dbs.tables(ctx, src, includes([]string{"app.*", "_canopy_sync.*"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"app.t", "app.u"}; !slices.Equal(got, want) {
		t.Fatalf("tables %v, want %v", got, want)
	}
	stmt, err := dbs.schema(ctx, src, "app", "t")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stmt, "CREATE TABLE `t`") || !strings.Contains(stmt, "PRIMARY KEY (`id`)") {
		t.Fatalf("schema %q", stmt)
	}
	if _, err := dbs.schema(ctx, src, "app", "missing"); err == nil {
		t.Fatal("schema of a missing table: no error")
	}
}
