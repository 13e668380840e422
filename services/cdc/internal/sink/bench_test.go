package sink_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink"
)

// BenchmarkWrite writes capture-sized batches (1000 row changes of a
// Debezium-sized value) to one topic and reports messages per second.
func BenchmarkWrite(b *testing.B) {
	br := broker(b)
	s := sink.New([]string{br.Addr()}, sink.Options{})
	b.Cleanup(func() { _ = s.Close() })
	value := make([]byte, 350)
	for i := range value {
		value[i] = 'v'
	}
	batch := make([]change.Message, 1000)
	for i := range batch {
		batch[i] = change.Message{Topic: "cdc.acme.i1.app.bench", Key: fmt.Appendf(nil, `{"id":%d}`, i), Value: value}
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msgs/s")
}
