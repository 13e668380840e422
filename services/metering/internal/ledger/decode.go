package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// decoded is one batch's messages turned into the payloads its topic's
// handler applies; messages that are not usage (other event types) or that
// cannot be decoded are counted and left out.
type decoded struct {
	instances []instanceRec
	samples   []sampleRec
	cdc       []cdcRec
	plans     []planRec
	ingest    []ingestRec

	messages    int // how many messages this was decoded from
	skipped     int // left out for whatever reason (undecodable included)
	undecodable int
}

// merge appends o's records to d's (o's messages come after d's).
func (d *decoded) merge(o *decoded) {
	d.instances = append(d.instances, o.instances...)
	d.samples = append(d.samples, o.samples...)
	d.cdc = append(d.cdc, o.cdc...)
	d.plans = append(d.plans, o.plans...)
	d.ingest = append(d.ingest, o.ingest...)
	d.messages += o.messages
	d.skipped += o.skipped
	d.undecodable += o.undecodable
}

// origin is what a late_events row says of a CloudEvent.
type origin struct {
	id, typ, source string
	recv            time.Time
}

type instanceRec struct {
	off int64
	in  events.Instance
	// at is when it happened: OccurredAt, or (when that is missing or
	// absurd) the event's time, to the microsecond DATETIME(6) keeps.
	at time.Time
}

type sampleRec struct {
	off    int64
	origin origin
	tenant string // the tenant header, when the payload has none
	b      events.SampleBatch
}

type cdcRec struct {
	part   int
	off    int64
	recv   time.Time
	tenant string
	u      events.CDCStreamUsage
	// key is the event's identity (source, id): the cdc outbox relay may
	// deliver an event twice, and its rows must count once.
	key [16]byte
}

type planRec struct {
	off int64
	typ string
	p   events.Plan
}

type ingestRec struct {
	part int
	off  int64
	recv time.Time
	e    meter.Event
	key  [16]byte

	// Set by prepareIngest: the event's contributions, the aggregation of
	// each meter, and whether it is late.
	cs   []meter.Contribution
	aggs map[string]meter.Aggregation
	late bool
}

var instanceTypes = map[string]bool{
	events.TypeInstanceRequested: true, events.TypeInstanceReady: true, events.TypeInstanceFailed: true,
	events.TypeInstanceUpdating: true, events.TypeInstanceUpdated: true, events.TypeInstanceDeleting: true,
	events.TypeInstanceDeleted: true,
}

var planTypes = map[string]bool{events.TypePlanCreated: true, events.TypePlanUpdated: true, events.TypePlanDeprecated: true}

// decode turns msgs into payloads. An undecodable message is logged with
// where it is, counted, and skipped: its offset still commits with the
// batch, so one bad message never stalls metering.
func (l *Ledger) decode(ctx context.Context, topic string, part int, msgs []kafka.Message, d *decoded) {
	bad := func(m *kafka.Message, err error) {
		d.skipped++
		d.undecodable++
		l.log.WarnContext(ctx, "skipping undecodable message", slog.String("topic", m.Topic),
			slog.Int("partition", m.Partition), slog.Int64("offset", m.Offset), slog.Any("err", err))
	}
	for i := range msgs {
		m := &msgs[i]
		recv := m.Time.UTC()
		if m.Time.IsZero() {
			recv = l.cfg.Now().UTC()
		}
		if topic == events.TopicUsageIngest {
			rec, err := decodeIngest(m, part, recv)
			switch {
			case err != nil:
				bad(m, err)
			case rec.e.TenantID == "":
				d.skipped++
			default:
				d.ingest = append(d.ingest, rec)
			}
			continue
		}
		ev, err := eventbus.DecodeMessage(*m)
		if err != nil {
			bad(m, err)
			continue
		}
		switch {
		case topic == events.TopicInstances && instanceTypes[ev.Type]:
			var in events.Instance
			if err := ev.Decode(&in); err != nil {
				bad(m, err)
				continue
			}
			if in.InstanceID == "" {
				bad(m, fmt.Errorf("%s event %s: no instance_id", ev.Type, ev.ID))
				continue
			}
			d.instances = append(d.instances, instanceRec{off: m.Offset, in: in, at: eventTime(in.OccurredAt, ev.Time, recv)})
		case topic == events.TopicSamples && ev.Type == events.TypeNodeSampled:
			var b events.SampleBatch
			if err := ev.Decode(&b); err != nil {
				bad(m, err)
				continue
			}
			d.samples = append(d.samples, sampleRec{off: m.Offset, tenant: ev.Tenant, b: b,
				origin: origin{id: ev.ID, typ: ev.Type, source: ev.Source, recv: recv}})
		case topic == events.TopicCDC && ev.Type == events.TypeCDCStreamUsage:
			var u events.CDCStreamUsage
			if err := ev.Decode(&u); err != nil {
				bad(m, err)
				continue
			}
			d.cdc = append(d.cdc, cdcRec{part: m.Partition, off: m.Offset, recv: recv, tenant: ev.Tenant, u: u,
				key: meter.Event{Source: ev.Source, ID: ev.ID}.DedupKey()})
		case topic == events.TopicCatalog && planTypes[ev.Type]:
			var pe events.PlanEvent
			if err := ev.Decode(&pe); err != nil {
				bad(m, err)
				continue
			}
			d.plans = append(d.plans, planRec{off: m.Offset, typ: ev.Type, p: pe.Plan})
		default:
			d.skipped++ // not usage
		}
	}
}

// decodeIngest parses an ingested CloudEvent (structured mode: the record
// value is the JSON event, the record time when the API received it).
func decodeIngest(m *kafka.Message, part int, recv time.Time) (ingestRec, error) {
	e, ok := parseEventFast(m.Value)
	if !ok {
		if err := json.Unmarshal(m.Value, &e); err != nil {
			return ingestRec{}, fmt.Errorf("ingested event: %w", err)
		}
	}
	if e.ID == "" || e.Source == "" {
		return ingestRec{}, errors.New("ingested event without id or source")
	}
	if e.Time.IsZero() {
		e.Time = recv
	}
	return ingestRec{part: part, off: m.Offset, recv: recv, e: e, key: e.DedupKey()}, nil
}

// eventTime is the first of the candidate times within DATETIME's range, in
// UTC and to the microsecond.
func eventTime(candidates ...time.Time) time.Time {
	for _, t := range candidates {
		if !t.Before(minDatetime) && !t.After(maxDatetime) {
			return t.UTC().Truncate(time.Microsecond)
		}
	}
	return candidates[len(candidates)-1].UTC().Truncate(time.Microsecond)
}
