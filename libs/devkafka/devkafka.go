// Package devkafka runs an embedded, in-process Kafka-wire-protocol broker
// (franz-go's kfake) for `make dev`, the all-in-one binary and tests.
//
// It is for development and tests only: one broker node, no replication, no
// security. Services never import it and never know they talk to it; they
// reach it through segmentio/kafka-go exactly as they reach a real Kafka, so
// swapping in a real cluster is a matter of changing one address. It is not a
// Kafka client library and not a production broker.
package devkafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/canopy-platform/canopy/libs/statedir"
)

// DefaultAddr is where the embedded broker listens when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:9092"

// DefaultPartitions is the partition count of auto-created topics when
// Config.Partitions is zero.
const DefaultPartitions = 3

// Config configures the embedded broker.
type Config struct {
	// Addr is the host:port to listen on (default 127.0.0.1:9092); use
	// "127.0.0.1:0" for a random free port (tests).
	Addr string `yaml:"addr" env:"ADDR"`
	// DataDir, when set, persists topics, records and committed group offsets
	// there so a restart resumes where the previous run stopped; empty keeps
	// everything in memory. It is kept private (see libs/statedir): made 0700
	// and tightened at start and close, since the broker itself writes
	// 0755/0644.
	DataDir string `yaml:"data_dir" env:"DATA_DIR"`
	// Partitions is the partition count of auto-created topics and of
	// CreateTopics requests that ask for the broker default (default 3).
	Partitions int `yaml:"partitions" env:"PARTITIONS"`
	// GroupMinSessionTimeout is the smallest consumer group session timeout
	// the broker accepts (default 1s, lower than Kafka's 6s so tests can use
	// short timeouts).
	GroupMinSessionTimeout time.Duration `yaml:"group_min_session_timeout" env:"GROUP_MIN_SESSION_TIMEOUT"`
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.GroupMinSessionTimeout == 0 {
		c.GroupMinSessionTimeout = time.Second
	}
	return c
}

// Validate reports configuration errors after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", c.Addr, err))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("partitions %d: must be at least 1", c.Partitions))
	}
	if c.GroupMinSessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("group min session timeout %s: must not be negative", c.GroupMinSessionTimeout))
	}
	return errors.Join(errs...)
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	dataDir string
	logger  *slog.Logger
	once    sync.Once
}

// Start starts the broker and returns once it accepts connections. ctx bounds
// the start only; the broker runs until Close.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Broker, error) {
	if logger == nil {
		return nil, errors.New("devkafka: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("devkafka config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start devkafka: %w", err)
	}
	cfg = cfg.withDefaults()
	logger = logger.With(slog.String("component", "devkafka"))

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake always asks for 127.0.0.1:<port>; listen where we were told to.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			var lc net.ListenConfig
			return lc.Listen(ctx, network, cfg.Addr)
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.GroupMinSessionTimeout(cfg.GroupMinSessionTimeout),
		kfake.ClusterID("canopy-devkafka"),
		kfake.WithLogger(slogAdapter{logger: logger}),
	}
	if cfg.DataDir != "" {
		if err := statedir.Ensure(cfg.DataDir, logger); err != nil {
			return nil, fmt.Errorf("start devkafka: %w", err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start devkafka on %s: %w", cfg.Addr, err)
	}
	addrs := cluster.ListenAddrs()
	if len(addrs) != 1 {
		cluster.Close()
		return nil, fmt.Errorf("start devkafka: got %d listeners, want 1", len(addrs))
	}
	b := &Broker{cluster: cluster, addr: addrs[0], dataDir: cfg.DataDir, logger: logger}
	logger.InfoContext(ctx, "embedded kafka broker started",
		slog.String("addr", b.addr), slog.String("data_dir", cfg.DataDir), slog.Int("partitions", cfg.Partitions))
	return b, nil
}

// Addr is the host:port clients use as their bootstrap broker.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, persisting its state first when a DataDir is set.
// It is safe to call more than once.
func (b *Broker) Close() {
	b.once.Do(func() {
		b.cluster.Close()
		if b.dataDir != "" {
			// The broker creates 0755/0644; the 0700 DataDir hid them while it ran.
			if _, err := statedir.Tighten(b.dataDir); err != nil {
				b.logger.Warn("tighten embedded kafka data dir", "err", err)
			}
		}
		b.logger.Info("embedded kafka broker stopped", slog.String("addr", b.addr))
	})
}

// slogAdapter routes kfake's printf-style logs to slog. kfake logs every
// request at its info level, so that maps to debug.
type slogAdapter struct{ logger *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	var l slog.Level
	switch level {
	case kfake.LogLevelError:
		l = slog.LevelError
	case kfake.LogLevelWarn:
		l = slog.LevelWarn
	default:
		l = slog.LevelDebug
	}
	ctx := context.Background()
	if !a.logger.Enabled(ctx, l) {
		return
	}
	a.logger.Log(ctx, l, fmt.Sprintf(format, args...))
}
