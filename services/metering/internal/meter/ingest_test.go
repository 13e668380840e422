package meter

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const good = `{"specversion":"1.0","id":"e-1","source":"gw","type":"api.request","subject":"i-1","time":"2026-12-03T10:15:00.5Z","data":{"tokens":12}}`

func fieldErrs(t *testing.T, err error) map[string]string {
	t.Helper()
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not FieldErrors", err, err)
	}
	out := map[string]string{}
	for _, f := range fe {
		out[f.Field] = f.Detail
	}
	return out
}

func TestParseEventsValid(t *testing.T) {
	now := t0.Add(time.Hour)
	evs, err := ParseEvents([]byte(good), false, 10, now)
	if err != nil {
		t.Fatal(err)
	}
	want := Event{SpecVersion: "1.0", ID: "e-1", Source: "gw", Type: "api.request", Subject: "i-1",
		Time: time.Date(2026, 12, 3, 10, 15, 0, 5e8, time.UTC), Data: json.RawMessage(`{"tokens":12}`)}
	if len(evs) != 1 || !eventEqual(evs[0], want) {
		t.Fatalf("got %+v, want %+v", evs, want)
	}
	// Missing time is now; unknown extensions ignored; null optional attributes are absent.
	evs, err = ParseEvents([]byte(`[{"specversion":"1.0","id":"a","source":"s","type":"x","myext":5,"subject":null,"data":null},`+good+`,`+good+`]`), true, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || !evs[0].Time.Equal(now) || evs[0].Data != nil || evs[0].Subject != "" {
		t.Fatalf("batch %+v", evs)
	}
	if evs[1].ID != "e-1" || evs[2].ID != "e-1" {
		t.Errorf("duplicates within a request must be kept: %+v", evs)
	}
}

func eventEqual(a, b Event) bool {
	return a.SpecVersion == b.SpecVersion && a.ID == b.ID && a.Source == b.Source && a.Type == b.Type &&
		a.Subject == b.Subject && a.Time.Equal(b.Time) && a.DataContentType == b.DataContentType &&
		string(a.Data) == string(b.Data) && a.TenantID == b.TenantID
}

func TestParseEventsErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	cases := []struct {
		name   string
		body   string
		batch  bool
		fields map[string]string // field -> substring of detail
	}{
		{"missing id", `{"specversion":"1.0","source":"s","type":"x"}`, false, map[string]string{"id": "required"}},
		{"missing source and type", `{"specversion":"1.0","id":"a"}`, false, map[string]string{"source": "required", "type": "required"}},
		{"empty id", `{"specversion":"1.0","id":"","source":"s","type":"x"}`, false, map[string]string{"id": "empty"}},
		{"id not a string", `{"specversion":"1.0","id":7,"source":"s","type":"x"}`, false, map[string]string{"id": "must be a string"}},
		{"null id", `{"specversion":"1.0","id":null,"source":"s","type":"x"}`, false, map[string]string{"id": "required"}},
		{"wrong specversion", `{"specversion":"0.3","id":"a","source":"s","type":"x"}`, false, map[string]string{"specversion": `"1.0"`}},
		{"specversion a number", `{"specversion":1.0,"id":"a","source":"s","type":"x"}`, false, map[string]string{"specversion": "must be a string"}},
		{"missing specversion", `{"id":"a","source":"s","type":"x"}`, false, map[string]string{"specversion": "required"}},
		{"bad time", `{"specversion":"1.0","id":"a","source":"s","type":"x","time":"yesterday"}`, false, map[string]string{"time": "RFC 3339"}},
		{"time a number", `{"specversion":"1.0","id":"a","source":"s","type":"x","time":1700000000}`, false, map[string]string{"time": "must be a string"}},
		{"data an array", `{"specversion":"1.0","id":"a","source":"s","type":"x","data":[1]}`, false, map[string]string{"data": "JSON object"}},
		{"data a string", `{"specversion":"1.0","id":"a","source":"s","type":"x","data":"{}"}`, false, map[string]string{"data": "JSON object"}},
		{"data_base64", `{"specversion":"1.0","id":"a","source":"s","type":"x","data_base64":"e30="}`, false, map[string]string{"data_base64": "not supported"}},
		{"datacontenttype", `{"specversion":"1.0","id":"a","source":"s","type":"x","datacontenttype":"text/plain"}`, false, map[string]string{"datacontenttype": "application/json"}},
		{"tenantid a number", `{"specversion":"1.0","id":"a","source":"s","type":"x","tenantid":3}`, false, map[string]string{"tenantid": "must be a string"}},
		{"subject too long", `{"specversion":"1.0","id":"a","source":"s","type":"x","subject":"` + long + `"}`, false, map[string]string{"subject": "at most 255"}},
		{"not JSON", `{"specversion":`, false, map[string]string{"": "JSON"}},
		{"empty body", ``, false, map[string]string{"": "empty"}},
		{"array for single", `[` + good + `]`, false, map[string]string{"": "object"}},
		{"object for batch", good, true, map[string]string{"": "array"}},
		{"empty batch", `[]`, true, map[string]string{"": "empty batch"}},
		{"oversized batch", `[` + good + `,` + good + `,` + good + `,` + good + `]`, true, map[string]string{"": "at most 3"}},
		{"batch member errors are indexed", `[` + good + `,{"specversion":"1.0","source":"s","type":"x"},` + good + `,{"specversion":"1.0","id":"b","source":5,"type":"x"}]`, true,
			map[string]string{"[1].id": "required", "[3].source": "must be a string"}},
		{"batch member not an object", `[` + good + `,"hello"]`, true, map[string]string{"[1]": "JSON object"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit := 10
			if c.name == "oversized batch" {
				limit = 3
			}
			evs, err := ParseEvents([]byte(c.body), c.batch, limit, t0)
			if err == nil {
				t.Fatalf("accepted: %+v", evs)
			}
			if evs != nil {
				t.Errorf("events returned with an error: %+v", evs)
			}
			got := fieldErrs(t, err)
			if len(got) != len(c.fields) {
				t.Errorf("fields %v, want %v", got, c.fields)
			}
			for f, sub := range c.fields {
				if d, ok := got[f]; !ok || !strings.Contains(d, sub) {
					t.Errorf("field %q: %q, want it to mention %q (all: %v)", f, d, sub, got)
				}
			}
		})
	}
}

func TestFieldErrorsError(t *testing.T) {
	err := FieldErrors{{"[3].id", "is required"}, {"time", "must be an RFC 3339 timestamp"}}
	if got, want := err.Error(), "[3].id: is required; time: must be an RFC 3339 timestamp"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestDedupKey(t *testing.T) {
	e := Event{Source: "gw", ID: "e-1", Type: "a", Time: t0}
	// sha256("gw\x00e-1")[:16], fixed: the key is stored and must never change.
	const want = "f20028bf0d77ca2b9143ffc9c98b82b9" // printf 'gw\0e-1' | sha256sum
	k := e.DedupKey()
	other := Event{Source: "gw", ID: "e-1", Type: "b", Time: t0.Add(time.Hour), Data: json.RawMessage(`{"x":1}`)}
	if other.DedupKey() != k {
		t.Error("key depends on more than source and id")
	}
	if (Event{Source: "gwe", ID: "-1"}).DedupKey() == (Event{Source: "gw", ID: "e-1"}).DedupKey() {
		t.Error("source and id not separated")
	}
	if got := hex.EncodeToString(k[:]); got != want {
		t.Errorf("dedup key %s, want %s", got, want)
	}
}

func TestIsLate(t *testing.T) {
	cases := []struct {
		ev, recv time.Time
		late     bool
	}{
		{t0, t0, false},
		{t0, t0.Add(time.Hour), false},
		{t0, t0.Add(time.Hour + time.Nanosecond), true},
		{t0.Add(time.Minute), t0, false}, // from the future: not late
	}
	for i, c := range cases {
		if got := IsLate(c.ev, c.recv, time.Hour); got != c.late {
			t.Errorf("case %d: IsLate = %v, want %v", i, got, c.late)
		}
	}
}

func TestEventContributions(t *testing.T) {
	meters := []Meter{
		{Slug: "tokens", Aggregation: Sum, EventType: "api.request", ValueProperty: "usage.tokens"},
		{Slug: "requests", Aggregation: Count, EventType: "api.request"},
		{Slug: "peak", Aggregation: Max, EventType: "api.request", ValueProperty: "usage.tokens"},
		{Slug: "users", Aggregation: UniqueCount, EventType: "api.request", ValueProperty: "user"},
		{Slug: "other", Aggregation: Count, EventType: "other.type"},
		{Slug: NodeHours, Aggregation: Sum, Builtin: true},
	}
	ev := func(data string) Event {
		return Event{ID: "e", Source: "s", Type: "api.request", Subject: "i-1", Time: t0, TenantID: "t-1", Data: json.RawMessage(data)}
	}
	cases := []struct {
		name string
		e    Event
		info InstanceInfo
		want map[string]Contribution // by meter; Key filled below
	}{
		{"all match", ev(`{"usage":{"tokens":12.5},"user":"ann"}`), InstanceInfo{}, map[string]Contribution{
			"tokens": {Value: 12.5, Count: 1}, "requests": {Value: 1, Count: 1}, "peak": {Value: 12.5, Count: 1}, "users": {Value: 1, Count: 1, Unique: "ann"}}},
		{"numeric string and numeric unique", ev(`{"usage":{"tokens":"7"},"user":42}`), InstanceInfo{}, map[string]Contribution{
			"tokens": {Value: 7, Count: 1}, "requests": {Value: 1, Count: 1}, "peak": {Value: 7, Count: 1}, "users": {Value: 1, Count: 1, Unique: "42"}}},
		{"missing property skips the meter", ev(`{"user":"bob"}`), InstanceInfo{}, map[string]Contribution{
			"requests": {Value: 1, Count: 1}, "users": {Value: 1, Count: 1, Unique: "bob"}}},
		{"not a number skips", ev(`{"usage":{"tokens":"lots"},"user":true}`), InstanceInfo{}, map[string]Contribution{
			"requests": {Value: 1, Count: 1}}},
		{"no data counts", ev(``), InstanceInfo{}, map[string]Contribution{"requests": {Value: 1, Count: 1}}},
		{"instance subject keyed with plan and region", ev(`{"usage":{"tokens":1}}`), InstanceInfo{Tenant: "t-1", Plan: "p", Region: "eu"}, map[string]Contribution{
			"tokens": {Value: 1, Count: 1}, "requests": {Value: 1, Count: 1}, "peak": {Value: 1, Count: 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := map[string]Contribution{}
			for _, x := range EventContributions(c.e, meters, c.info) {
				if _, dup := got[x.Meter]; dup {
					t.Errorf("meter %s twice", x.Meter)
				}
				got[x.Meter] = x
			}
			if len(got) != len(c.want) {
				t.Errorf("meters %v, want %v", keys(got), keys(c.want))
			}
			for slug, w := range c.want {
				w.Key = Key{Tenant: "t-1", Meter: slug, Subject: "i-1", Plan: c.info.Plan, Region: c.info.Region}
				w.At = t0
				if g := got[slug]; g != w {
					t.Errorf("%s: %+v, want %+v", slug, g, w)
				}
			}
		})
	}
}

func keys(m map[string]Contribution) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return fmt.Sprint(s)
}
