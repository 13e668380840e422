package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/httpapi"
	"github.com/canopy-platform/canopy/services/metering/internal/ingest"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

const eventsPath = "/api/v1/usage/events"

// ev returns a valid CloudEvent as JSON with the given id and extra or
// replaced attributes (a nil value removes one).
func ev(id string, attrs map[string]any) string {
	m := map[string]any{"specversion": "1.0", "id": id, "source": "gw-1", "type": "com.example.api.call",
		"time": "2026-12-03T12:29:00Z", "data": map[string]any{"tokens": 3}}
	for k, v := range attrs {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func batchOf(evs ...string) string { return "[" + strings.Join(evs, ",") + "]" }

func TestIngestRejectsBadEvents(t *testing.T) {
	f := newFixture(t)
	many := make([]string, 1001)
	for i := range many {
		many[i] = ev(fmt.Sprint("e", i), nil)
	}
	huge := ev("big", map[string]any{"data": map[string]any{"pad": strings.Repeat("x", 1<<20)}})
	cases := []struct {
		name, contentType, body string
		fields                  []string
	}{
		{"missing id", httpapi.ContentTypeEvent, ev("", map[string]any{"id": nil}), []string{"id"}},
		{"empty id", httpapi.ContentTypeEvent, ev("", nil), []string{"id"}},
		{"missing source", httpapi.ContentTypeEvent, ev("a", map[string]any{"source": nil}), []string{"source"}},
		{"missing type", httpapi.ContentTypeEvent, ev("a", map[string]any{"type": nil}), []string{"type"}},
		{"id of the wrong type", httpapi.ContentTypeEvent, ev("a", map[string]any{"id": 42}), []string{"id"}},
		{"source of the wrong type", "application/json", ev("a", map[string]any{"source": []int{1}}), []string{"source"}},
		{"bad time", httpapi.ContentTypeEvent, ev("a", map[string]any{"time": "yesterday"}), []string{"time"}},
		{"wrong spec version", httpapi.ContentTypeEvent, ev("a", map[string]any{"specversion": "0.3"}), []string{"specversion"}},
		{"data not an object", httpapi.ContentTypeEvent, ev("a", map[string]any{"data": 5}), []string{"data"}},
		{"tenantid not a string", httpapi.ContentTypeEvent, ev("a", map[string]any{"tenantid": 7}), []string{"tenantid"}},
		{"one bad event spoils the batch", httpapi.ContentTypeBatch,
			batchOf(ev("a", nil), ev("b", map[string]any{"type": nil}), ev("c", nil), ev("d", map[string]any{"time": 12})),
			[]string{"[1].type", "[3].time"}},
		{"plain JSON array is a batch", "application/json", " \n" + batchOf(ev("a", map[string]any{"source": ""})), []string{"[0].source"}},
		{"batch of more than 1000 events", httpapi.ContentTypeBatch, batchOf(many...), []string{"body"}},
		{"body over 1 MiB", httpapi.ContentTypeEvent, huge, []string{"body"}},
		{"not JSON", httpapi.ContentTypeEvent, "{id:", []string{"body"}},
		{"a single event where a batch was announced", httpapi.ContentTypeBatch, ev("a", nil), []string{"body"}},
	}
	var status int
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := f.do(acmeMember, http.MethodPost, eventsPath, tc.contentType, []byte(tc.body))
			require.Equal(t, http.StatusBadRequest, status, "body: %s", body)
			p := problem(t, h, body)
			require.Equal(t, tc.fields, fieldsOf(p), "body: %s", body)
		})
	}
	status, _, _ = f.do(acmeMember, http.MethodPost, eventsPath, "text/plain", []byte(ev("a", nil)))
	require.Equal(t, http.StatusUnsupportedMediaType, status)
	status, _, _ = f.do(acmeViewer, http.MethodPost, eventsPath, httpapi.ContentTypeEvent, []byte(ev("a", nil)))
	require.Equal(t, http.StatusForbidden, status, "a viewer may not write usage")
	status, _, _ = f.do(nobody, http.MethodPost, eventsPath, httpapi.ContentTypeEvent, []byte(ev("a", nil)))
	require.Equal(t, http.StatusUnauthorized, status)

	require.Empty(t, readTopic(t, f.brokers), "nothing of a rejected request is published")

	// The limit itself is accepted.
	status, _, body := f.do(acmeMember, http.MethodPost, eventsPath, httpapi.ContentTypeBatch, []byte(batchOf(many[:1000]...)))
	require.Equal(t, http.StatusAccepted, status, "body: %s", body)
	require.JSONEq(t, `{"accepted": 1000}`, string(body))
	require.Len(t, readTopic(t, f.brokers), 1000)
}

func TestIngestTenantRules(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		p      tenancy.Principal
		body   string
		status int
		fields []string
	}{
		{"a tenant cannot report for another tenant", acmeMember,
			batchOf(ev("a", nil), ev("b", map[string]any{"tenantid": "globex"})), http.StatusForbidden, []string{"[1].tenantid"}},
		{"a tenant cannot report on another tenant's instance", acmeMember,
			batchOf(ev("a", map[string]any{"subject": "i1"}), ev("b", map[string]any{"subject": "i3"}), ev("c", map[string]any{"subject": "gw"})),
			http.StatusForbidden, []string{"[1].subject"}},
		{"the single event's fields have no index", globexMember, ev("a", map[string]any{"subject": "i2"}), http.StatusForbidden, []string{"subject"}},
		{"a platform-admin names the tenant of each event", admin,
			batchOf(ev("a", map[string]any{"tenantid": "acme"}), ev("b", nil)), http.StatusBadRequest, []string{"[1].tenantid"}},
		{"a platform-admin names a valid tenant", admin, ev("a", map[string]any{"tenantid": "Not A Tenant"}), http.StatusBadRequest, []string{"tenantid"}},
		{"an instance subject must be of the event's tenant, admin too", admin,
			ev("a", map[string]any{"tenantid": "globex", "subject": "i1"}), http.StatusForbidden, []string{"subject"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := f.do(tc.p, http.MethodPost, eventsPath, "application/json", []byte(tc.body))
			require.Equal(t, tc.status, status, "body: %s", body)
			require.Equal(t, tc.fields, fieldsOf(problem(t, h, body)), "body: %s", body)
		})
	}
	require.Empty(t, readTopic(t, f.brokers), "nothing of a refused request is published")

	// The rules let a tenant's own events through, its tenantid filled in.
	status, _, body := f.do(globexMember, http.MethodPost, eventsPath, "application/json",
		[]byte(batchOf(ev("a", map[string]any{"subject": "i3"}), ev("b", map[string]any{"tenantid": "globex", "subject": "gw"}))))
	require.Equal(t, http.StatusAccepted, status, "body: %s", body)
	msgs := readTopic(t, f.brokers)
	require.Len(t, msgs, 2)
	for _, m := range msgs {
		var e meter.Event
		require.NoError(t, json.Unmarshal(m.Value, &e))
		require.Equal(t, "globex", e.TenantID)
	}
}

// TestIngestPublishes checks what the ledger will read: one record per
// event, keyed by source NUL id, the receive time as record time, the
// event as JSON with the caller's tenant.
func TestIngestPublishes(t *testing.T) {
	f := newFixture(t)
	status, _, body := f.do(acmeMember, http.MethodPost, eventsPath, httpapi.ContentTypeBatch,
		[]byte(batchOf(ev("a", map[string]any{"subject": "i1"}), ev("b", map[string]any{"tenantid": "acme", "time": nil}), ev("c", map[string]any{"subject": "gw"}))))
	require.Equal(t, http.StatusAccepted, status, "body: %s", body)
	require.JSONEq(t, `{"accepted": 3}`, string(body))
	status, _, body = f.do(acmeMember, http.MethodPost, eventsPath, httpapi.ContentTypeEvent+"; charset=utf-8", []byte(ev("d", nil)))
	require.Equal(t, http.StatusAccepted, status, "body: %s", body)
	require.JSONEq(t, `{"accepted": 1}`, string(body))
	status, _, body = f.do(admin, http.MethodPost, eventsPath, "application/json", []byte(ev("e", map[string]any{"tenantid": "globex", "subject": "i3"})))
	require.Equal(t, http.StatusAccepted, status, "body: %s", body)
	// The same event again is accepted again: the ledger deduplicates.
	status, _, body = f.do(acmeMember, http.MethodPost, eventsPath, "application/json", []byte(batchOf(ev("d", nil))))
	require.Equal(t, http.StatusAccepted, status, "body: %s", body)

	msgs := readTopic(t, f.brokers)
	require.Len(t, msgs, 6)
	got := map[string][]meter.Event{}
	for _, m := range msgs {
		var e meter.Event
		require.NoError(t, json.Unmarshal(m.Value, &e))
		require.Equal(t, string(ingest.Key(e)), string(m.Key))
		require.Equal(t, e.Source+"\x00"+e.ID, string(m.Key))
		require.True(t, now.Equal(m.Time), "record time %s is the receive time", m.Time)
		got[e.ID] = append(got[e.ID], e)
	}
	require.Len(t, got["d"], 2)
	for _, id := range []string{"a", "b", "c", "d"} {
		e := got[id][0]
		require.Equal(t, "acme", e.TenantID, id)
		require.Equal(t, "1.0", e.SpecVersion)
		require.Equal(t, "gw-1", e.Source)
		require.Equal(t, "com.example.api.call", e.Type)
		require.JSONEq(t, `{"tokens": 3}`, string(e.Data))
	}
	require.Equal(t, "i1", got["a"][0].Subject)
	require.True(t, now.Equal(got["b"][0].Time), "a missing time is the receive time")
	require.Equal(t, time.Date(2026, 12, 3, 12, 29, 0, 0, time.UTC), got["a"][0].Time)
	require.Equal(t, "globex", got["e"][0].TenantID)
	// Copies of one event share a partition, so the ledger meets the
	// duplicate after the original.
	var parts []int
	for _, m := range msgs {
		var e meter.Event
		require.NoError(t, json.Unmarshal(m.Value, &e))
		if e.ID == "d" {
			parts = append(parts, m.Partition)
		}
	}
	require.Equal(t, parts[0], parts[1])
}

// TestIngestKafkaDown: with the broker gone the API answers 503 and says
// the request may be retried.
func TestIngestKafkaDown(t *testing.T) {
	ctx := context.Background()
	broker, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(broker.Close)
	brokers := []string{broker.Addr()}
	require.NoError(t, eventbus.EnsureTopics(ctx, brokers, eventbus.TopicSpec{Name: events.TopicUsageIngest, Partitions: 3}))
	pub, err := ingest.New(ingest.Config{Brokers: brokers, MaxAttempts: 1, WriteTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	f := newFixtureWith(t, brokers, pub)

	status, _, body := f.do(acmeMember, http.MethodPost, eventsPath, "application/json", []byte(ev("a", nil)))
	require.Equal(t, http.StatusAccepted, status, "body: %s", body)
	broker.Close()
	start := time.Now()
	status, h, body := f.do(acmeMember, http.MethodPost, eventsPath, "application/json", []byte(ev("b", nil)))
	require.Equal(t, http.StatusServiceUnavailable, status, "body: %s", body)
	require.Equal(t, "1", h.Get("Retry-After"))
	var p map[string]any
	require.NoError(t, json.Unmarshal(body, &p))
	require.Equal(t, true, p["retryable"])
	require.Less(t, time.Since(start), 15*time.Second)
}
