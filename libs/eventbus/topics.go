package eventbus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicSpec describes a topic for EnsureTopics.
type TopicSpec struct {
	// Name of the topic, e.g. "canopy.instances.v1".
	Name string
	// Partitions is the partition count; 0 uses the broker's default.
	Partitions int
	// ReplicationFactor is the replica count; 0 uses the broker's default.
	ReplicationFactor int
	// Configs are topic configs such as "retention.ms" or "cleanup.policy".
	Configs map[string]string
}

// EnsureTopics creates the topics that do not exist yet. Existing topics are
// left as they are (their partition count and configs are not changed).
func EnsureTopics(ctx context.Context, brokers []string, topics ...TopicSpec) error {
	if err := validateBrokers(brokers); err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	if len(topics) == 0 {
		return nil
	}
	req := &kafka.CreateTopicsRequest{Topics: make([]kafka.TopicConfig, 0, len(topics))}
	for _, t := range topics {
		if t.Name == "" {
			return errors.New("ensure topics: empty topic name")
		}
		tc := kafka.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor}
		if tc.NumPartitions <= 0 {
			tc.NumPartitions = -1
		}
		if tc.ReplicationFactor <= 0 {
			tc.ReplicationFactor = -1
		}
		keys := make([]string, 0, len(t.Configs))
		for k := range t.Configs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: t.Configs[k]})
		}
		req.Topics = append(req.Topics, tc)
	}

	transport := &kafka.Transport{ClientID: "canopy-eventbus"}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second, Transport: transport}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	var errs []error
	for _, t := range topics {
		if err := resp.Errors[t.Name]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ensure topics: %w", errors.Join(errs...))
	}
	return nil
}
