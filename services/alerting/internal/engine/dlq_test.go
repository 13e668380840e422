package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// A dead-letter topic that gains messages raises DeadLettersGrowing for the
// platform's receivers, and the alert resolves by itself once the topic
// stops growing.
func TestDeadLettersGrowingFiresAndResolves(t *testing.T) {
	t.Parallel()
	brokers := devkafkatest.Start(t)
	const dlq = "canopy.test.v1.dlq"
	require.NoError(t, eventbus.EnsureTopics(context.Background(), brokers, eventbus.TopicSpec{Name: dlq, Partitions: 1}))
	env := newEnv(t)
	h := newHook(t)
	env.receiver("platform-oncall", "", h, "alertname", "topic")
	env.start(engine.Config{Brokers: brokers, GroupID: "alerting-" + t.Name(), DLQEvery: 200 * time.Millisecond})

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: dlq, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { _ = w.Close() })
	// The engine's first look is its baseline, so messages keep coming
	// until one look after it saw the topic grow.
	until := time.Now().Add(deadline)
	for i := 0; h.count("DeadLettersGrowing", "firing") == 0; i++ {
		require.True(t, time.Now().Before(until), "no DeadLettersGrowing notification")
		require.NoError(t, w.WriteMessages(context.Background(), kafka.Message{Value: []byte(fmt.Sprintf("poison %d", i))}))
		time.Sleep(50 * time.Millisecond) // the pace of arriving dead letters, not a wait for a condition
	}
	m := h.message(t, "DeadLettersGrowing", "firing")
	require.Equal(t, dlq, m.Alerts[0].Labels["topic"])
	require.Equal(t, "canopy.test.v1", m.Alerts[0].Labels["source_topic"])
	require.NotContains(t, m.Alerts[0].Labels, "tenant", "a platform alert")
	require.Contains(t, m.Alerts[0].Annotations["summary"], "of canopy.test.v1 were dead-lettered")
	h.message(t, "DeadLettersGrowing", "resolved")
}
