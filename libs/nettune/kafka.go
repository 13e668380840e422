package nettune

import "time"

// KafkaSettings is producer batching for the link to the Kafka brokers, in the
// terms of segmentio/kafka-go's Writer (BatchBytes, BatchSize, BatchTimeout,
// Compression); kafka-go has its own Dialer, so only settings are exposed.
type KafkaSettings struct {
	// BatchBytes caps one produce request per partition, in bytes.
	BatchBytes int64
	// BatchSize caps the messages in one batch.
	BatchSize int
	// BatchTimeout is the linger: how long a partial batch waits for more.
	BatchTimeout time.Duration
	// Compression is the codec name: "lz4" or "zstd".
	Compression string
}

const (
	// kafkaBatchBytes is 1 MiB: kafka-go's default and just under the broker's
	// default message.max.bytes (1,048,588); larger batches are refused with
	// MESSAGE_TOO_LARGE unless every broker and topic is changed too.
	kafkaBatchBytes = 1 * mib
	// kafkaLingerMin is 5 ms, Kafka 4.0's new linger.ms default (KIP-1030):
	// enough to batch bursts without adding noticeable latency. kafka-go's own
	// default BatchTimeout of 1 s is far too slow for lifecycle events.
	kafkaLingerMin = 5 * time.Millisecond
	// kafkaLingerMax bounds the linger on very long links.
	kafkaLingerMax = 100 * time.Millisecond
)

// kafkaSettings returns the batching for the link.
//
// kafka-go keeps one produce request in flight per partition, so a
// partition's throughput is about one batch per round trip: on a LAN 100
// messages (kafka-go's BatchSize default) per 0.2–2 ms is plenty, across
// regions it is not (100 × 1 KiB per 80 ms ≈ 1.2 MiB/s), hence ten times the
// messages per batch on a WAN. The linger is half an RTT there, which
// costs little next to the round trip the request pays anyway, and the 5 ms
// floor elsewhere. Compression: lz4 is cheap on CPU and still cuts cross-AZ
// traffic (billed per GB by cloud providers); zstd compresses best and
// bandwidth is what a cross-region link lacks (Kafka ops docs,
// compression.type).
func kafkaSettings(l Link) KafkaSettings {
	if !wan(l) {
		return KafkaSettings{BatchBytes: kafkaBatchBytes, BatchSize: 100, BatchTimeout: kafkaLingerMin, Compression: "lz4"}
	}
	linger := min(max(ceilTo(l.RTT/2, time.Millisecond), kafkaLingerMin), kafkaLingerMax)
	return KafkaSettings{BatchBytes: kafkaBatchBytes, BatchSize: 1000, BatchTimeout: linger, Compression: "zstd"}
}
