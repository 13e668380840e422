package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/devkafka"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/provview"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink/sinktest"
	"github.com/canopy-platform/canopy/services/cdc/internal/stream"
)

// TestDeliversToKafkaThenCheckpoints runs a stream through the real sink
// on the embedded broker: every message of the acknowledged batches is in
// the topic, in order, tombstones included, by the time the checkpoint is
// stored; a broker outage stops the checkpoints and the runner resumes
// from the last one once it is back.
func TestDeliversToKafkaThenCheckpoints(t *testing.T) {
	b, err := devkafka.Start(context.Background(), devkafka.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sk := sink.New([]string{b.Addr()}, sink.Options{MaxAttempts: 2})
	t.Cleanup(func() { _ = sk.Close() })

	rp := newRepo(streamOf("s1", stream.StateStreaming, "0-1-0"))
	caps := newCaptures()
	start(t, Config{RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond}, rp, newNodes(primary), sk, WithCapture(caps.Run))
	c := caps.next(t)

	const txs, perTx = 20, 150
	for tx := 1; tx <= txs; tx++ {
		gtid := fmt.Sprintf("0-1-%d", tx)
		msgs := make([]change.Message, perTx)
		for i := range msgs {
			msgs[i] = change.Message{Topic: topic, Key: fmt.Appendf(nil, `{"id":%d}`, i%10), Value: fmt.Appendf(nil, `{"tx":%d,"row":%d}`, tx, i),
				GTID: gtid, Row: i, EventTime: time.Now()}
			if i == perTx-1 {
				msgs[i].Value = nil
			}
		}
		// Each transaction arrives in two batches; only the second ends it.
		c.send(t, change.Batch{Messages: msgs[:100]})
		c.send(t, change.Batch{Messages: msgs[100:], Checkpoint: &change.Checkpoint{GTID: gtid}})
	}
	eventually(t, "last checkpoint", func() bool { return rp.stream("s1").Checkpoint.GTID == fmt.Sprintf("0-1-%d", txs) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := sinktest.ReadNow(ctx, b.Addr(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != txs*perTx {
		t.Fatalf("%d records in Kafka once the last checkpoint is stored, want %d", len(recs), txs*perTx)
	}
	for i, r := range recs {
		tx, row := i/perTx+1, i%perTx
		want := fmt.Sprintf(`{"tx":%d,"row":%d}`, tx, row)
		if row == perTx-1 {
			if r.Value != nil {
				t.Fatalf("record %d: tombstone has value %q", i, r.Value)
			}
			continue
		}
		if string(r.Value) != want {
			t.Fatalf("record %d is %s, want %s (order lost)", i, r.Value, want)
		}
	}
	if ev := rp.stream("s1").Checkpoint.Events; ev != txs*perTx {
		t.Fatalf("events count %d", ev)
	}

	// The broker goes away: the next batch's checkpoint is never stored
	// and capture restarts from the last one.
	b.Close()
	c.send(t, change.Batch{Messages: []change.Message{{Topic: topic, Key: []byte(`{"id":1}`), Value: []byte(`{}`)}},
		Checkpoint: &change.Checkpoint{GTID: "0-1-99"}})
	c.ended(t)
	c2 := caps.next(t)
	if c2.cfg.Start != fmt.Sprintf("0-1-%d", txs) || rp.stream("s1").Checkpoint.GTID != fmt.Sprintf("0-1-%d", txs) {
		t.Fatalf("after the outage: restart at %q, stored %q", c2.cfg.Start, rp.stream("s1").Checkpoint.GTID)
	}
}

// The adapters cdc.go wires in.
var (
	_ Sink  = (*sink.Sink)(nil)
	_ Nodes = (*provview.Client)(nil)
)
