package allinone

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/statedir"
)

// RunBroker runs the embedded Kafka-protocol broker alone (`canopy broker`),
// on cfg.EmbeddedKafkaAddr with its data in the state directory, exactly
// where the all-in-one process keeps it, until ctx ends. Split mode
// (scripts/split.sh) starts it first so that separately started services
// share one broker. ready, when not nil, is called with the address once
// the broker accepts connections.
func RunBroker(ctx context.Context, cfg Config, logger *slog.Logger, ready func(addr string)) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("broker config: %w", err)
	}
	if logger == nil {
		return fmt.Errorf("broker: nil logger")
	}
	if err := statedir.Ensure(cfg.StateDir, logger); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b, err := devkafka.Start(ctx, devkafka.Config{
		Addr:    cfg.EmbeddedKafkaAddr,
		DataDir: filepath.Join(cfg.StateDir, "kafka"),
	}, logger)
	if err != nil {
		return fmt.Errorf("start embedded kafka: %w", err)
	}
	defer b.Close()
	if ready != nil {
		ready(b.Addr())
	}
	<-ctx.Done()
	return nil
}
