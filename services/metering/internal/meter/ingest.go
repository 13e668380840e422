package meter

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"strconv"
	"strings"
	"time"
)

// Event is a usage CloudEvent (structured JSON mode, spec 1.0) as the API
// accepts it and as it travels on events.TopicUsageIngest; TenantID is the
// "tenantid" extension, set by the API from the caller.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	TenantID        string          `json:"tenantid,omitempty"`
}

// FieldError names one invalid field of a request ("[3].id", "time").
type FieldError struct{ Field, Detail string }

// FieldErrors is every invalid field of a request.
type FieldErrors []FieldError

// Error joins the errors as "field: detail"; a request-level error (empty
// field) is its detail alone.
func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		if f.Field == "" {
			parts[i] = f.Detail
		} else {
			parts[i] = f.Field + ": " + f.Detail
		}
	}
	return strings.Join(parts, "; ")
}

// Limits on event attributes: the columns they are stored in (late_events,
// usage subject, tenant ids) are this wide.
const (
	maxAttrLen   = 255
	maxTenantLen = 64
)

// ParseEvents parses a single CloudEvent (batch false) or a JSON array of
// them (batch true), validating every one (specversion 1.0, id, source,
// type non-empty strings, time RFC 3339 when present, data an object or
// absent, tenantid a string) and at most maxEvents (no limit when
// maxEvents <= 0); a missing time is filled with now. Errors are
// FieldErrors naming each field; no event is returned unless all are
// valid. Unknown extension attributes are accepted and dropped;
// data_base64 is refused (metering reads JSON data only). Duplicates
// within the request are kept: deduplication is the ledger's.
func ParseEvents(body []byte, batch bool, maxEvents int, now time.Time) ([]Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, FieldErrors{{"", "empty body"}}
	}
	if !json.Valid(body) {
		return nil, FieldErrors{{"", "body is not valid JSON"}}
	}
	if !batch {
		if body[0] != '{' {
			return nil, FieldErrors{{"", "body must be a JSON object (one CloudEvent)"}}
		}
		var errs FieldErrors
		e := parseEvent(body, "", now, &errs)
		if len(errs) > 0 {
			return nil, errs
		}
		return []Event{e}, nil
	}
	if body[0] != '[' {
		return nil, FieldErrors{{"", "body must be a JSON array of CloudEvents"}}
	}
	var members []json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, FieldErrors{{"", "body must be a JSON array of CloudEvents"}}
	}
	if len(members) == 0 {
		return nil, FieldErrors{{"", "empty batch"}}
	}
	if maxEvents > 0 && len(members) > maxEvents {
		return nil, FieldErrors{{"", fmt.Sprintf("batch has %d events; at most %d are accepted", len(members), maxEvents)}}
	}
	var errs FieldErrors
	out := make([]Event, len(members))
	for i, m := range members {
		prefix := "[" + strconv.Itoa(i) + "]"
		m = bytes.TrimSpace(m)
		if len(m) == 0 || m[0] != '{' {
			errs = append(errs, FieldError{prefix, "must be a JSON object (a CloudEvent)"})
			continue
		}
		out[i] = parseEvent(m, prefix+".", now, &errs)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// parseEvent decodes one CloudEvent object, appending an error per bad
// attribute named with prefix ("" or "[3].").
func parseEvent(obj []byte, prefix string, now time.Time, errs *FieldErrors) Event {
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(obj, &attrs); err != nil {
		*errs = append(*errs, FieldError{strings.TrimSuffix(prefix, "."), "must be a JSON object (a CloudEvent)"})
		return Event{}
	}
	fail := func(field, detail string) { *errs = append(*errs, FieldError{prefix + field, detail}) }
	// str reads a string attribute: present reports it was there and not null.
	str := func(field string, required bool, maxLen int) (string, bool) {
		raw, ok := attrs[field]
		if !ok || isNull(raw) {
			if required {
				fail(field, "is required")
			}
			return "", false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			fail(field, "must be a string")
			return "", false
		}
		if required && s == "" {
			fail(field, "must not be empty")
			return "", false
		}
		if maxLen > 0 && len(s) > maxLen {
			fail(field, fmt.Sprintf("must be at most %d bytes", maxLen))
			return "", false
		}
		return s, true
	}
	var e Event
	if v, ok := str("specversion", true, 0); ok {
		if v != "1.0" {
			fail("specversion", `must be "1.0"`)
		}
		e.SpecVersion = v
	}
	e.ID, _ = str("id", true, maxAttrLen)
	e.Source, _ = str("source", true, maxAttrLen)
	e.Type, _ = str("type", true, maxAttrLen)
	e.Subject, _ = str("subject", false, maxAttrLen)
	e.TenantID, _ = str("tenantid", false, maxTenantLen)
	e.Time = now.UTC()
	if v, ok := str("time", false, 0); ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			fail("time", "must be an RFC 3339 timestamp")
		} else {
			e.Time = t.UTC()
		}
	}
	if v, ok := str("datacontenttype", false, 0); ok {
		mt, _, err := mime.ParseMediaType(v)
		if err != nil || mt != "application/json" {
			fail("datacontenttype", "must be application/json")
		}
		e.DataContentType = v
	}
	if raw, ok := attrs["data"]; ok && !isNull(raw) {
		raw = bytes.TrimSpace(raw)
		if raw[0] != '{' {
			fail("data", "must be a JSON object")
		} else {
			e.Data = append(json.RawMessage(nil), raw...)
		}
	}
	if raw, ok := attrs["data_base64"]; ok && !isNull(raw) {
		fail("data_base64", "is not supported; send data as a JSON object")
	}
	return e
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// DedupKey is the event's identity: the first 16 bytes of
// sha256(source NUL id).
func (e Event) DedupKey() [16]byte {
	h := sha256.New()
	h.Write([]byte(e.Source))
	h.Write([]byte{0})
	h.Write([]byte(e.ID))
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// EventContributions returns the contributions of e to the custom meters
// whose EventType is e.Type; info is the subject's instance when the
// subject names one (else Tenant is e.TenantID and Plan, Region empty).
// A meter whose ValueProperty is missing or not a number (or not a string
// for UNIQUE_COUNT) is skipped for this event.
//
// ValueProperty is a dot path into data ("usage.tokens"). A number may
// also be sent as a numeric string ("12.5"), as OpenMeter accepts; NaN and
// infinities are not numbers. UNIQUE_COUNT also counts a number by its
// JSON text. Every contribution has Count 1; COUNT's Value is 1.
func EventContributions(e Event, meters []Meter, info InstanceInfo) []Contribution {
	if info.Tenant == "" {
		info.Tenant = e.TenantID
	}
	var data map[string]any
	decoded := false
	var out []Contribution
	for _, m := range meters {
		if m.Builtin || m.EventType == "" || m.EventType != e.Type {
			continue
		}
		c := Contribution{
			Key:   Key{Tenant: info.Tenant, Meter: m.Slug, Subject: e.Subject, Plan: info.Plan, Region: info.Region},
			At:    e.Time.UTC(),
			Value: 1,
			Count: 1,
		}
		if m.Aggregation == Count {
			out = append(out, c)
			continue
		}
		if !decoded {
			data, decoded = decodeData(e.Data), true
		}
		v, ok := lookup(data, m.ValueProperty)
		if !ok {
			continue
		}
		if m.Aggregation == UniqueCount {
			switch x := v.(type) {
			case string:
				c.Unique = x
			case json.Number:
				c.Unique = x.String()
			default:
				continue
			}
			out = append(out, c)
			continue
		}
		f, ok := number(v)
		if !ok {
			continue
		}
		c.Value = f
		out = append(out, c)
	}
	return out
}

// decodeData decodes e.Data keeping numbers exact (json.Number).
func decodeData(raw json.RawMessage) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil
	}
	return m
}

// lookup follows a dot path through nested objects.
func lookup(data map[string]any, path string) (any, bool) {
	if path == "" || data == nil {
		return nil, false
	}
	var cur any = data
	for _, seg := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// number reads a JSON number or a numeric string as a finite float64.
func number(v any) (float64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// IsLate reports whether an event of eventTime received at receivedAt is
// past the grace window (and so is recorded, not counted): it is older
// than receivedAt - grace.
func IsLate(eventTime, receivedAt time.Time, grace time.Duration) bool {
	return eventTime.Before(receivedAt.Add(-grace))
}
