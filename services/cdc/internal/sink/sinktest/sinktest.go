// Package sinktest reads back what was written to a topic of the embedded
// broker, for the tests of the sink, the pipeline and the integration
// tests. It is test support only.
package sinktest

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Record is one record read back, with the partition it sits in.
type Record struct {
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
}

// ReadNow returns every record present in topic now, partition by
// partition in offset order. A topic that does not exist yields none and an
// error.
func ReadNow(ctx context.Context, broker, topic string) ([]Record, error) {
	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", broker, err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	var out []Record
	for _, p := range parts {
		recs, err := readPartition(ctx, broker, topic, p.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func readPartition(ctx context.Context, broker, topic string, partition int) ([]Record, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		return nil, fmt.Errorf("dial leader of %s/%d: %w", topic, partition, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return nil, fmt.Errorf("offsets of %s/%d: %w", topic, partition, err)
	}
	var out []Record
	if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
		return nil, fmt.Errorf("seek %s/%d: %w", topic, partition, err)
	}
	for off := first; off < last; {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		batch := conn.ReadBatch(1, 16<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			out = append(out, Record{Partition: partition, Offset: m.Offset, Key: m.Key, Value: m.Value})
			off = m.Offset + 1
		}
		if err := batch.Close(); err != nil {
			return nil, fmt.Errorf("read %s/%d at %d: %w", topic, partition, off, err)
		}
	}
	return out, nil
}

// Wait reads topic until it holds at least n records or ctx ends.
func Wait(ctx context.Context, broker, topic string, n int) ([]Record, error) {
	for {
		recs, err := ReadNow(ctx, broker, topic)
		if err == nil && len(recs) >= n {
			return recs, nil
		}
		select {
		case <-ctx.Done():
			return recs, fmt.Errorf("topic %s: %d records, want %d (last error %v): %w", topic, len(recs), n, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
