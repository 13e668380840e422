package sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/devkafka"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink/sinktest"
)

func broker(tb testing.TB) *devkafka.Broker {
	tb.Helper()
	b, err := devkafka.Start(context.Background(), devkafka.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b
}

func newSink(t *testing.T, addr string, opts sink.Options) *sink.Sink {
	t.Helper()
	s := sink.New([]string{addr}, opts)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestWriteCreatesTopicsAndKeepsOrderPerKey writes interleaved changes of
// several keys in several calls to a topic that does not exist: the topic is
// created with the configured partitions (not the broker's default 3), each
// key's changes land in one partition in write order, and a tombstone
// arrives with a null value.
func TestWriteCreatesTopicsAndKeepsOrderPerKey(t *testing.T) {
	b := broker(t)
	s := newSink(t, b.Addr(), sink.Options{Partitions: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "cdc.acme.i1.app.orders"
	const keys, rounds = 7, 30
	var want int
	for r := range rounds {
		var msgs []change.Message
		for k := range keys {
			m := change.Message{Topic: topic, Key: fmt.Appendf(nil, `{"id":%d}`, k), Value: fmt.Appendf(nil, `{"v":%d}`, r)}
			if r == rounds-1 && k == 0 {
				m.Value = nil // tombstone
			}
			msgs = append(msgs, m)
		}
		if err := s.Write(ctx, msgs); err != nil {
			t.Fatalf("write round %d: %v", r, err)
		}
		want += len(msgs)
	}
	conn, err := kafka.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil || len(parts) != 4 {
		t.Fatalf("topic partitions %d (%v), want 4", len(parts), err)
	}
	recs, err := sinktest.ReadNow(ctx, b.Addr(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != want {
		t.Fatalf("read %d records right after Write returned, want %d (Write must wait for acks)", len(recs), want)
	}
	next := map[string]int{}
	partOf := map[string]int{}
	for _, rec := range recs {
		k := string(rec.Key)
		if p, ok := partOf[k]; ok && p != rec.Partition {
			t.Fatalf("key %s in partitions %d and %d", k, p, rec.Partition)
		}
		partOf[k] = rec.Partition
		r := next[k]
		if k == `{"id":0}` && r == rounds-1 {
			if rec.Value != nil {
				t.Fatalf("tombstone of %s arrived with value %q", k, rec.Value)
			}
		} else if got := string(rec.Value); got != fmt.Sprintf(`{"v":%d}`, r) {
			t.Fatalf("key %s: record %d is %s, want round %d", k, rec.Offset, got, r)
		}
		next[k] = r + 1
	}
	for k, n := range next {
		if n != rounds {
			t.Fatalf("key %s: %d records, want %d", k, n, rounds)
		}
	}
}

// TestWriteLargeBatchAcrossTopics writes one batch larger than a produce
// request (records and bytes) spread over two topics; all of it is there
// when Write returns.
func TestWriteLargeBatchAcrossTopics(t *testing.T) {
	b := broker(t)
	s := newSink(t, b.Addr(), sink.Options{BatchSize: 500, BatchBytes: 256 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	value := make([]byte, 400)
	for i := range value {
		value[i] = 'x'
	}
	const n = 5000
	msgs := make([]change.Message, n)
	for i := range msgs {
		topic := "cdc.acme.i1.app.a"
		if i%2 == 1 {
			topic = "cdc.acme.i1.app.b"
		}
		msgs[i] = change.Message{Topic: topic, Key: fmt.Appendf(nil, `{"id":%d}`, i), Value: value}
	}
	if err := s.Write(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"cdc.acme.i1.app.a", "cdc.acme.i1.app.b"} {
		recs, err := sinktest.ReadNow(ctx, b.Addr(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != n/2 {
			t.Fatalf("%s: %d records, want %d", topic, len(recs), n/2)
		}
		for i := 1; i < len(recs); i++ {
			if recs[i].Offset <= recs[i-1].Offset {
				t.Fatalf("%s: offsets out of order", topic)
			}
		}
	}
}

// TestWriteFailsWithoutBroker: nothing acknowledged is an error (wrapped),
// never a silent success, and it ends with the context.
func TestWriteFailsWithoutBroker(t *testing.T) {
	b := broker(t)
	addr := b.Addr()
	b.Close()
	s := newSink(t, addr, sink.Options{MaxAttempts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.Write(ctx, []change.Message{{Topic: "cdc.acme.i1.app.t", Key: []byte(`{"id":1}`), Value: []byte(`{}`)}})
	if err == nil {
		t.Fatal("write to a stopped broker succeeded")
	}
}
