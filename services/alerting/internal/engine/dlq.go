package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// The dead-letter watch: every consumer of the platform copies a message it
// gave up on (poison, a permanent failure, retries exhausted) to
// "<topic>.dlq" and moves on, so a growing dead-letter topic is work the
// platform silently did not do.
const (
	defaultDLQEvery = 30 * time.Second
	// dlqSuffix names a dead-letter topic (libs/eventbus).
	dlqSuffix = ".dlq"
	// ruleDLQ is the built-in rule's id (label rule, generatorURL).
	ruleDLQ = "dead-letters-growing"
)

// watchDLQ raises DeadLettersGrowing, a platform alert per dead-letter
// topic that gained messages since the previous look. Each growth keeps it
// firing for two more looks; a topic that stops growing resolves by itself
// (as a Prometheus alert that is no longer sent). The first look is the
// baseline: what was dead-lettered before the engine started is not news.
func (e *Engine) watchDLQ(ctx context.Context) {
	if len(e.cfg.Brokers) == 0 {
		return
	}
	client := &kafka.Client{Addr: kafka.TCP(e.cfg.Brokers...), Timeout: 10 * time.Second}
	seen := map[string]int64{}
	t := time.NewTicker(e.cfg.DLQEvery)
	defer t.Stop()
	for {
		if err := e.lookDLQ(ctx, client, seen); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "look at dead-letter topics", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lookDLQ reads every dead-letter topic's size and pushes an alert for each
// one that grew since seen.
func (e *Engine) lookDLQ(ctx context.Context, client *kafka.Client, seen map[string]int64) error {
	sizes, err := dlqSizes(ctx, client)
	if err != nil {
		return err
	}
	now := e.now()
	var grown []*alert.Alert
	for topic, size := range sizes {
		prev, known := seen[topic]
		seen[topic] = size
		if !known || size <= prev {
			continue
		}
		source := strings.TrimSuffix(topic, dlqSuffix)
		grown = append(grown, &alert.Alert{
			Labels: alert.LabelSet{alert.LabelAlertName: "DeadLettersGrowing", alert.LabelSeverity: "warning",
				"topic": topic, "source_topic": source, "rule": ruleDLQ},
			Annotations: alert.LabelSet{
				"summary": fmt.Sprintf("%d messages of %s were dead-lettered in the last %s", size-prev, source, e.cfg.DLQEvery),
				"description": fmt.Sprintf("A consumer of %s gave up on them (poison, a permanent failure or retries exhausted) "+
					"and copied them to %s with dlq_reason and dlq_class headers; they are not processed until replayed.", source, topic),
			},
			StartsAt: now, EndsAt: now.Add(2 * e.cfg.DLQEvery), UpdatedAt: now,
			GeneratorURL: e.cfg.GeneratorURL + ruleDLQ, Rule: ruleDLQ, Value: float64(size - prev),
		})
	}
	if len(grown) == 0 {
		return nil
	}
	sort.Slice(grown, func(i, j int) bool { return grown[i].Labels["topic"] < grown[j].Labels["topic"] })
	return e.Push(ctx, grown)
}

// dlqSizes returns, per dead-letter topic, the sum of its partitions' end
// offsets: how many messages were ever dead-lettered there.
func dlqSizes(ctx context.Context, client *kafka.Client) (map[string]int64, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, t := range md.Topics {
		if !strings.HasSuffix(t.Name, dlqSuffix) || t.Error != nil {
			continue
		}
		for _, p := range t.Partitions {
			req[t.Name] = append(req[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	sizes := map[string]int64{}
	if len(req) == 0 {
		return sizes, nil
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("read dead-letter offsets: %w", err)
	}
	for topic, parts := range offs.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("read %s[%d] offset: %w", topic, p.Partition, p.Error)
			}
			sizes[topic] += p.LastOffset
		}
	}
	return sizes, nil
}
