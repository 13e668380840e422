package eventbus

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/segmentio/kafka-go"
)

// Kafka record headers of the CloudEvents binary binding and Canopy's own.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	HeaderTenant      = tenancy.KafkaHeader
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
	HeaderBaggage     = "baggage"

	// Headers added to a dead-lettered record next to its original ones.
	HeaderDLQReason    = "dlq_reason"
	HeaderDLQClass     = "dlq_class"
	HeaderDLQTopic     = "dlq_topic"
	HeaderDLQPartition = "dlq_partition"
	HeaderDLQOffset    = "dlq_offset"
)

// SpecVersion is the CloudEvents version written in ce_specversion.
const SpecVersion = "1.0"

// DefaultContentType is the content type of events that set none.
const DefaultContentType = "application/json"

// ErrInvalidEvent is wrapped by every event validation error.
var ErrInvalidEvent = errors.New("invalid event")

// reservedHeader reports whether an extension may not use name.
func reservedHeader(name string) bool {
	switch name {
	case HeaderSpecVersion, HeaderID, HeaderType, HeaderSource, HeaderTime, HeaderSubject,
		HeaderContentType, HeaderTenant, HeaderTraceParent, HeaderTraceState, HeaderBaggage:
		return true
	}
	return false
}

// validate checks what a consumer needs to process e.
func (e *Event) validate() error {
	var errs []error
	if e.ID == "" {
		errs = append(errs, errors.New("id is required"))
	}
	if e.Type == "" {
		errs = append(errs, errors.New("type is required"))
	}
	if e.Source == "" {
		errs = append(errs, errors.New("source is required"))
	}
	if e.Tenant != "" {
		if _, err := tenancy.Parse(e.Tenant); err != nil {
			errs = append(errs, fmt.Errorf("tenant: %w", err))
		}
	}
	for k := range e.Extensions {
		if k == "" || reservedHeader(k) {
			errs = append(errs, fmt.Errorf("extension %q: reserved or empty header name", k))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w %q (type %q): %w", ErrInvalidEvent, e.ID, e.Type, errors.Join(errs...))
}

// decodeEvent turns a consumed record into an Event. A record that lacks the
// required CloudEvents attributes or carries malformed ones is poison.
//
// The string attributes alias the record's key and header bytes instead of
// copying them: kafka-go allocates those slices afresh for every record, and
// nothing writes to them after decoding (the handler only gets the strings;
// the dead-letter path only reads them). This keeps decoding allocation-free,
// which matters because a consumer's garbage is what the whole process pays
// for in GC time.
func decodeEvent(m *kafka.Message) (Event, error) {
	e := Event{
		Key:       bytesString(m.Key),
		Data:      m.Value,
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
	}
	var specVersion, rawTime string
	for i := range m.Headers {
		h := &m.Headers[i]
		v := bytesString(h.Value)
		switch h.Key {
		case HeaderSpecVersion:
			specVersion = v
		case HeaderID:
			e.ID = v
		case HeaderType:
			e.Type = v
		case HeaderSource:
			e.Source = v
		case HeaderTime:
			rawTime = v
		case HeaderSubject:
			e.Subject = v
		case HeaderContentType:
			e.ContentType = v
		case HeaderTenant:
			e.Tenant = v
		case HeaderTraceParent:
			e.TraceParent = v
		case HeaderTraceState, HeaderBaggage:
			// Trace propagation; the propagator reads these from the headers.
		default:
			if e.Extensions == nil {
				e.Extensions = make(map[string]string, 2)
			}
			e.Extensions[h.Key] = v
		}
	}

	switch {
	case e.ID == "":
		return e, Poison(fmt.Errorf("missing %s header", HeaderID))
	case e.Type == "":
		return e, Poison(fmt.Errorf("missing %s header", HeaderType))
	case specVersion != "" && !strings.HasPrefix(specVersion, "1."):
		return e, Poison(fmt.Errorf("unsupported %s %q", HeaderSpecVersion, specVersion))
	}
	if rawTime != "" {
		t, err := time.Parse(time.RFC3339Nano, rawTime)
		if err != nil {
			return e, Poison(fmt.Errorf("malformed %s header: %w", HeaderTime, err))
		}
		e.Time = t
	}
	if e.ContentType == "" {
		e.ContentType = DefaultContentType
	}
	return e, nil
}

// bytesString returns b's bytes as a string without copying; b must not be
// modified afterwards.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// headerCarrier adapts kafka-go headers to an OTel TextMapCarrier.
type headerCarrier []kafka.Header

func (c *headerCarrier) Get(key string) string {
	for _, h := range *c {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c *headerCarrier) Set(key, value string) {
	for i, h := range *c {
		if h.Key == key {
			(*c)[i].Value = []byte(value)
			return
		}
	}
	*c = append(*c, kafka.Header{Key: key, Value: []byte(value)})
}

func (c *headerCarrier) Keys() []string {
	keys := make([]string, len(*c))
	for i, h := range *c {
		keys[i] = h.Key
	}
	return keys
}
