package cdcbench

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"github.com/canopy-platform/canopy/services/cdc/internal/mysqlstore"
	"github.com/canopy-platform/canopy/services/cdc/internal/pipeline"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

// oneNode answers the pipeline's node lookups with the benchmark's node as
// the instance's only (primary) node.
type oneNode struct{ n *node }

func (o oneNode) Instance(_ context.Context, id string) (provview.Instance, error) {
	return provview.Instance{ID: id, Tenant: "bench", Engine: "mysql", State: "ready",
		Nodes: []provview.Node{{ID: "n0", Address: o.n.proc.Addr, Role: provview.RolePrimary, Healthy: true}},
		CDC:   provview.Credentials{Username: cdcUser, Password: cdcPassword}}, nil
}

// serviceLeg runs the service's own data path over [before, after]: a
// stream stored in MySQL, a pipeline.Manager runner (capture → Kafka →
// checkpoint stored in canopy_cdc after every acknowledged write, queued
// batches merged), until the stored checkpoint reaches after. It returns
// how long that took.
func serviceLeg(b *testing.B, n *node, broker, before string, target gtidpos.Position, iter uint32) time.Duration {
	b.Helper()
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	st, err := mysqlstore.New(storetest.NewDB(b, fmt.Sprintf("cdcbench%d", iter)))
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	snk := sink.New([]string{broker}, sink.Options{})
	defer snk.Close()
	mgr, err := pipeline.New(pipeline.Config{}, st, oneNode{n}, snk, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	s := stream.New(fmt.Sprintf("svc%d", iter), "bench", fmt.Sprintf("svc%d", iter),
		stream.Spec{Tables: []string{"app.*"}, Snapshot: stream.SnapshotNever}, time.Now())
	s.Checkpoint = change.Checkpoint{GTID: before}
	if err := st.Create(ctx, s); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx) }()
	defer func() { cancel(); <-done }()
	mgr.Kick(s.ID)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Minute)
	for {
		select {
		case err := <-done:
			b.Fatalf("pipeline stopped: %v", err)
		case <-deadline:
			b.Fatalf("the stored checkpoint did not reach the end of the load in 5m")
		case <-tick.C:
		}
		got, err := st.Get(ctx, s.ID)
		if err != nil {
			b.Fatal(err)
		}
		if got.State == stream.StateFailed {
			b.Fatalf("stream failed: %s", got.Status.LastError)
		}
		if pos, err := gtidpos.Parse(got.Checkpoint.GTID); err == nil && pos.Covers(target, 0) {
			d := time.Since(start)
			if err := deleteTopics(ctx, broker, topicOf(s.Prefix())); err != nil {
				b.Fatal(err)
			}
			return d
		}
	}
}
