// Package devkafkatest starts the embedded broker for a test: one call
// instead of the start, cleanup and topic creation every consumer test
// repeats. It is test support only.
package devkafkatest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
)

// Partitions is the partition count of the broker's topics: more than one,
// so partition assignment is exercised.
const Partitions = 3

// Start runs an embedded broker on a free loopback port until the test
// ends, creates topics with Partitions partitions each, and returns the
// bootstrap brokers.
func Start(t testing.TB, topics ...string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: Partitions}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start the embedded broker: %v", err)
	}
	t.Cleanup(broker.Close)
	brokers := []string{broker.Addr()}
	specs := make([]eventbus.TopicSpec, len(topics))
	for i, name := range topics {
		specs[i] = eventbus.TopicSpec{Name: name, Partitions: Partitions}
	}
	if err := eventbus.EnsureTopics(ctx, brokers, specs...); err != nil {
		t.Fatalf("create topics %v: %v", topics, err)
	}
	return brokers
}
