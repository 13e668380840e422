// Package eventbus publishes and consumes Canopy's events on Kafka through
// segmentio/kafka-go, in the CloudEvents 1.0 Kafka binary binding: the event
// attributes travel in ce_* headers (plus "tenant" and W3C "traceparent") and
// the payload is the record value.
//
// The Publisher writes events synchronously (Publish returns once the broker
// acked them), keyed by aggregate id so per-aggregate order holds. The
// Subscriber consumes in a consumer group, puts the tenant and trace context
// in the handler's context, retries retryable failures with libs/retry,
// dead-letters poison and permanent failures to "<topic>.dlq", and commits an
// offset only after its message was handled (at-least-once). With the
// OnAssigned/OnRevoked options it follows its group generation by generation
// and tells the caller which partitions it holds (work sharded by partition
// ownership); with Replay it reads each assigned partition from its start and
// commits nothing. EnsureTopics creates topics idempotently.
//
// It is not an outbox (libs/store relays outbox rows through a Publisher), not
// a schema registry (payload schemas live in api/events/) and not an
// exactly-once pipeline: handlers must tolerate redelivery, deduplicating on
// Event.ID where it matters. It works the same against a real Kafka and the
// embedded libs/devkafka broker, and must never learn which one it talks to.
package eventbus
