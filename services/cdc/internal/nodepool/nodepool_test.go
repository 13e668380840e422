package nodepool

import (
	"context"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/capture"
	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
)

// TestPositionOfRealServer polls @@gtid_binlog_pos of the local MariaDB
// (the service database server), reusing one pool per node.
func TestPositionOfRealServer(t *testing.T) {
	p := New(1)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := capture.Source{Addr: "127.0.0.1:3306", User: "root"}
	pos, err := p.Position(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gtidpos.Parse(pos); err != nil {
		t.Fatalf("position %q: %v", pos, err)
	}
	again, err := p.Position(ctx, src)
	if err != nil || len(p.dbs) != 1 {
		t.Fatalf("second poll %q %v with %d pools", again, err, len(p.dbs))
	}
	if _, err := p.Position(ctx, capture.Source{Addr: "127.0.0.1:1", User: "root"}); err == nil {
		t.Fatal("poll of a closed port succeeded")
	}
}
