package eventbus

import "github.com/segmentio/kafka-go"

// DecodeMessage turns a record read without a Subscriber (a consumer that
// reads partitions itself, such as metering's ledger) into an Event, exactly
// as a Subscriber decodes what it hands its Handler. A record without ce_id
// or ce_type, or with a malformed ce_time or unsupported ce_specversion, is
// a *PoisonError.
//
// The Event's strings alias m's key and header bytes (no copies): m must not
// be modified while the Event is in use.
func DecodeMessage(m kafka.Message) (Event, error) {
	return decodeEvent(&m)
}
