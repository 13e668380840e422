package ledger

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

var eventJSONSeeds = []string{
	`{"specversion":"1.0","id":"e-1","source":"gw","type":"api.call","subject":"i-1","time":"2026-12-03T10:15:00.5Z","data":{"tokens":12,"u":{"a":[1,"}",{"b":null}]}},"tenantid":"acme"}`,
	`{"specversion":"1.0","id":"e-2","source":"gw","type":"t","time":"2026-12-03T10:15:00+02:00"}`,
	` { "id" : "x" , "data" : "a\"b}" , "source":"s" } `,
	`{"id":"x","data":12.5e3}`,
	`{"id":"x","data":null}`,
	`{"id":"x","data":[1,2,{"a":"]"}]}`,
	`{}`,
	`{"ID":"upper"}`,
	`{"id":"esc\"aped"}`,
	`{"id":null}`,
	`{"id":"x","unknown":1}`,
	`{"id":"x","data":{"a":1}`,
	`{"id":"x","data":{"a":01}}`,
	`{"id":"x","time":"yesterday"}`,
	`{"id":"x",}`,
	`{"id":"x"} trailing`,
	"{\"id\":\"\xff\"}",
	`{"id":"x","data":tru}`,
	`[]`,
}

// TestParseEventFastMatchesEncodingJSON: whenever the fast path decodes
// an event, encoding/json decodes the same bytes to the same event.
func TestParseEventFastMatchesEncodingJSON(t *testing.T) {
	hits := 0
	for _, s := range eventJSONSeeds {
		if checkFastParse(t, []byte(s)) {
			hits++
		}
	}
	if hits < 6 {
		t.Fatalf("fast path took only %d of the well-formed seeds", hits)
	}
	// What the ingestion API writes always takes the fast path.
	b, err := json.Marshal(apiEvent("e-9", "acme", "i-1", time.Now(), 3, "ann"))
	if err != nil {
		t.Fatal(err)
	}
	if !checkFastParse(t, b) {
		t.Fatalf("fast path refused %s", b)
	}
}

func FuzzParseEventFast(f *testing.F) {
	for _, s := range eventJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFastParse(t, b) })
}

// checkFastParse compares the fast path with encoding/json on b and
// reports whether the fast path took it.
func checkFastParse(t *testing.T, b []byte) bool {
	t.Helper()
	got, ok := parseEventFast(b)
	if !ok {
		return false
	}
	var want meter.Event
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("fast path took %q, encoding/json says %v", b, err)
	}
	if got.SpecVersion != want.SpecVersion || got.ID != want.ID || got.Source != want.Source || got.Type != want.Type ||
		got.Subject != want.Subject || got.DataContentType != want.DataContentType || got.TenantID != want.TenantID ||
		!got.Time.Equal(want.Time) || got.Time.Location().String() != want.Time.Location().String() ||
		!bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) {
		t.Fatalf("%q: fast %+v, encoding/json %+v", b, got, want)
	}
	return true
}
