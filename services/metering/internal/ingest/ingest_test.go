package ingest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"

	"github.com/canopy-platform/canopy/services/metering/internal/ingest"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

func TestPublish(t *testing.T) {
	brokers := devkafkatest.Start(t, events.TopicUsageIngest)
	p, err := ingest.New(ingest.Config{Brokers: brokers})
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()

	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	evs := []meter.Event{
		{SpecVersion: "1.0", ID: "1", Source: "gw", Type: "t", Time: at.Add(-time.Minute), TenantID: "acme", Data: json.RawMessage(`{"html":"<b>&</b>"}`)},
		{SpecVersion: "1.0", ID: "2", Source: "gw", Type: "t", Subject: "i1", Time: at, TenantID: "acme"},
		{SpecVersion: "1.0", ID: "1", Source: "gw", Type: "t", Time: at, TenantID: "acme"},
	}
	require.NoError(t, p.Publish(t.Context(), evs, at))
	require.NoError(t, p.Publish(t.Context(), nil, at), "nothing to publish is no error")

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var got []kafka.Message
	for part := range devkafkatest.Partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], events.TopicUsageIngest, part)
		require.NoError(t, err)
		last, err := conn.ReadLastOffset()
		require.NoError(t, err)
		require.NoError(t, conn.Close())
		if last == 0 {
			continue
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: events.TopicUsageIngest, Partition: part, MaxWait: 100 * time.Millisecond})
		for {
			m, err := rd.ReadMessage(ctx)
			require.NoError(t, err)
			got = append(got, m)
			if m.Offset+1 >= last {
				break
			}
		}
		require.NoError(t, rd.Close())
	}
	require.Len(t, got, 3)
	byKey := map[string][]kafka.Message{}
	for _, m := range got {
		require.True(t, at.Equal(m.Time), "record time is the receive time, not the event's")
		var e meter.Event
		require.NoError(t, json.Unmarshal(m.Value, &e))
		require.Equal(t, "acme", e.TenantID)
		require.Equal(t, e.Source+"\x00"+e.ID, string(m.Key))
		byKey[string(m.Key)] = append(byKey[string(m.Key)], m)
	}
	copies := byKey["gw\x001"]
	require.Len(t, copies, 2)
	require.Equal(t, copies[0].Partition, copies[1].Partition, "copies of an event share a partition")
	require.Contains(t, string(copies[0].Value), `"data":{"html":"<b>&</b>"}`, "data is passed as sent")
}

func TestNewNeedsBrokers(t *testing.T) {
	_, err := ingest.New(ingest.Config{})
	require.Error(t, err)
}
