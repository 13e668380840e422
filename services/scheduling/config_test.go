package scheduling_test

import (
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/config"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/services/scheduling"
)

func TestConfigFromEnvironment(t *testing.T) {
	cfg := scheduling.DefaultConfig()
	err := config.Load(&cfg, config.Options{Environ: []string{
		"CANOPY_INTERNAL_SECRET=0123456789abcdef0",
		"CANOPY_SCHEDULING_ADDR=127.0.0.1:9999",
		"CANOPY_SCHEDULING_PLACEMENT_STRATEGY=binpack",
		"CANOPY_SCHEDULING_PLACEMENT_MAX_LATENCY_MS=35",
		"CANOPY_SCHEDULING_PLACEMENT_WEIGHT_PRICE=2",
		"CANOPY_SCHEDULING_PLACEMENT_HOSTS_TO_SCORE=-1",
		"CANOPY_SCHEDULING_RESERVATION_TTL=1m",
		"CANOPY_SCHEDULING_INVENTORY_FILE=/tmp/inv.yaml",
		"CANOPY_KAFKA_BROKERS=a:1,b:2",
		"CANOPY_SCHEDULING_CONSUME=false",
		"CANOPY_SCHEDULING_CONSUMERS=6",
		"CANOPY_SCHEDULING_BATCH_WINDOW=2ms",
		"CANOPY_SCHEDULING_BATCH_MAX_BATCH=16",
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Scheduler.Placement
	switch {
	case cfg.Addr != "127.0.0.1:9999", p.Strategy != "binpack", p.MaxLatencyMS != 35, p.Weights.Price != 2,
		p.Weights.Utilisation != 1, p.HostsToScore != -1, cfg.Scheduler.ReservationTTL != time.Minute,
		cfg.Scheduler.ReapInterval != 15*time.Second, cfg.InventoryFile != "/tmp/inv.yaml",
		len(cfg.Kafka.Brokers) != 2, cfg.Consume, cfg.Database != "canopy_scheduling",
		cfg.Consumers != 6, cfg.Batch.Window != 2*time.Millisecond, cfg.Batch.MaxBatch != 16, cfg.Batch.Flushers != 2:
		t.Fatalf("%+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := scheduling.DefaultConfig()
	cfg.Addr = "nope"
	cfg.Scheduler.Placement.Strategy = "random"
	cfg.CatalogURL = "::"
	err := cfg.Validate()
	for _, want := range []string{"addr", "internal_secret", "strategy", "catalog url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v lacks %q", err, want)
		}
	}
	if _, err := scheduling.New(scheduling.DefaultConfig(), scheduling.Deps{Logger: obs.NopLogger()}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
	good := scheduling.DefaultConfig()
	good.InternalSecret = "0123456789abcdef0"
	if _, err := scheduling.New(good, scheduling.Deps{Logger: obs.NopLogger(), Registry: obs.NewRegistry()}); err == nil {
		t.Fatal("New accepted a nil publisher")
	}
}
