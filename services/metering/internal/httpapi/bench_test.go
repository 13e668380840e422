package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/httpapi"
	"github.com/canopy-platform/canopy/services/metering/internal/ingest"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
)

// benchServer serves the API as the service does (httpx.NewRouter's
// middleware) with the test principal middleware in place of the
// gateway's signature check.
func benchServer(b *testing.B, us *usage.Store, pub httpapi.Publisher) (*httptest.Server, *http.Client) {
	b.Helper()
	api, err := httpapi.New(httpapi.Deps{Usage: us, Ingest: pub, Now: time.Now})
	require.NoError(b, err)
	r := httpx.NewRouter(slog.New(slog.DiscardHandler), httpx.WithoutTracing())
	r.Use(withPrincipal)
	api.Routes(r)
	srv := httptest.NewServer(r)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	return srv, client
}

// BenchmarkIngestAPI posts batches of 100 usage events (a third naming one
// of the tenant's instances) from concurrent clients through a real
// listener into the embedded broker, and reports events/s accepted.
func BenchmarkIngestAPI(b *testing.B) {
	const batch = 100
	brokers := devkafkatest.Start(b, events.TopicUsageIngest)
	pub, err := ingest.New(ingest.Config{Brokers: brokers})
	require.NoError(b, err)
	b.Cleanup(func() { _ = pub.Close() })
	f := newFixtureWith(b, brokers, pub)
	srv, client := benchServer(b, f.usage, pub)

	bodies := make([][]byte, 64)
	for i := range bodies {
		evs := make([]string, batch)
		for j := range evs {
			subject := fmt.Sprint("gw-", j%7)
			if j%3 == 0 {
				subject = "i1"
			}
			evs[j] = fmt.Sprintf(`{"specversion":"1.0","id":"b%d-%d","source":"gateway/eu-1","type":"com.example.api.call","subject":%q,"time":%q,"data":{"tokens":%d,"route":"/v1/chat"}}`,
				i, j, subject, time.Now().UTC().Format(time.RFC3339Nano), j)
		}
		bodies[i] = []byte("[" + strings.Join(evs, ",") + "]")
	}
	var next, failed atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[next.Add(1)%int64(len(bodies))]
			req, _ := http.NewRequest(http.MethodPost, srv.URL+eventsPath, bytes.NewReader(body))
			req.Header.Set("Content-Type", httpapi.ContentTypeBatch)
			req.Header.Set(roleHeader, string(tenancy.RoleTenantMember))
			req.Header.Set(tenantHeader, "acme")
			res, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusAccepted {
				failed.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	require.Zero(b, failed.Load(), "requests not accepted")
	rate := float64(b.N*batch) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	require.Equal(b, int64(b.N*batch), topicRecords(b, brokers), "every accepted event is on the topic")
	b.Logf("ingest API: %d batches of %d events in %s: %.0f events/s", b.N, batch, elapsed.Round(time.Millisecond), rate)
}

// topicRecords counts the records on the ingest topic.
func topicRecords(b *testing.B, brokers []string) int64 {
	b.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	var reqs []kafka.OffsetRequest
	for p := range devkafkatest.Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	res, err := client.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{events.TopicUsageIngest: reqs}})
	require.NoError(b, err)
	var n int64
	for _, p := range res.Topics[events.TopicUsageIngest] {
		require.NoError(b, p.Error)
		n += p.LastOffset
	}
	return n
}

// nopPublisher stands in for Kafka where nothing is ingested.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, []meter.Event, time.Time) error { return nil }

// Size of BenchmarkUsageQuery's data.
const (
	benchDays      = 30
	benchInstances = 1000
)

var benchStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// loadNodeHours stores 30 days of hourly node_hours (one node-hour per
// hour) for 1,000 instances of tenant bench, and the matching days, the
// way the ledger would have: multi-row INSERTs in one transaction, then the
// per-tenant rollups of both.
func loadNodeHours(b *testing.B, db *store.DB) {
	b.Helper()
	const rowsPerInsert = 4000
	start := time.Now()
	err := db.Tx(context.Background(), func(tx *store.Tx) error {
		var sb strings.Builder
		n := 0
		flush := func(table string) error {
			if n == 0 {
				return nil
			}
			_, err := tx.ExecContext(context.Background(), sb.String())
			sb.Reset()
			n = 0
			if err != nil {
				return fmt.Errorf("load %s: %w", table, err)
			}
			return nil
		}
		add := func(table string, at time.Time, inst int, total int) error {
			if n == 0 {
				sb.WriteString("INSERT INTO " + table + " (tenant_id, meter, window_start, subject, plan_id, region, total, cnt) VALUES ")
			} else {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "('bench','node_hours','%s','inst-%04d','plan-%d','region-%d',%d,0)",
				at.Format(time.DateTime), inst, inst%3, inst%2, total)
			n++
			if n == rowsPerInsert {
				return flush(table)
			}
			return nil
		}
		// In primary key order: (tenant, meter, window_start, subject, …).
		for h := range benchDays * 24 {
			for i := range benchInstances {
				if err := add("usage_hour", benchStart.Add(time.Duration(h)*time.Hour), i, 3600); err != nil {
					return err
				}
			}
		}
		if err := flush("usage_hour"); err != nil {
			return err
		}
		for d := range benchDays {
			for i := range benchInstances {
				if err := add("usage_day", benchStart.AddDate(0, 0, d), i, 24*3600); err != nil {
					return err
				}
			}
		}
		return flush("usage_day")
	})
	require.NoError(b, err)
	// The per-tenant rollups the ledger keeps beside them.
	rollUp(b, db)
	_, err = db.SQL().ExecContext(context.Background(), "ANALYZE TABLE usage_hour, usage_day, usage_tenant_hour, usage_tenant_day")
	require.NoError(b, err)
	b.Logf("loaded %d hour and %d day rows (and their rollups) in %s", benchDays*24*benchInstances, benchDays*benchInstances, time.Since(start).Round(time.Millisecond))
}

// BenchmarkUsageQuery measures GET /api/v1/usage over 30 days of hourly
// node_hours for 1,000 instances: a tenant's whole month by day, and one
// instance's month by hour (goal: p99 < 50 ms). The third query, the
// month by day per instance (30,000 rows), is for information.
func BenchmarkUsageQuery(b *testing.B) {
	f := newFixtureWith(b, nil, nopPublisher{})
	loadNodeHours(b, f.db)
	srv, client := benchServer(b, f.usage, nopPublisher{})
	from, to := benchStart.Format(time.DateOnly), benchStart.AddDate(0, 0, benchDays).Format(time.DateOnly)
	for _, q := range []struct {
		name, query string
		rows        int
		value       float64
	}{
		{"tenant_30d_by_day", "from=" + from + "&to=" + to + "&window=day", benchDays, benchInstances * 24},
		{"instance_30d_by_hour", "from=" + from + "&to=" + to + "&window=hour&instance=inst-0500", benchDays * 24, 1},
		{"tenant_30d_by_day_per_instance", "from=" + from + "&to=" + to + "&window=day&group_by=instance", benchDays * benchInstances, 24},
	} {
		b.Run(q.name, func(b *testing.B) {
			get := func() (time.Duration, []byte) {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/usage?"+q.query, nil)
				req.Header.Set(roleHeader, string(tenancy.RoleTenantViewer))
				req.Header.Set(tenantHeader, "bench")
				t0 := time.Now()
				res, err := client.Do(req)
				require.NoError(b, err)
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				d := time.Since(t0)
				require.NoError(b, err)
				require.Equal(b, http.StatusOK, res.StatusCode, "body: %s", body)
				return d, body
			}
			// The answer is right before it is timed.
			_, body := get()
			var res httpapi.UsageResponse
			require.NoError(b, json.Unmarshal(body, &res))
			require.Len(b, res.Data, q.rows)
			for _, r := range res.Data {
				require.InDelta(b, q.value, r.Value, 1e-9)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				d, _ := get()
				lat = append(lat, d)
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				i := int(math.Ceil(p*float64(len(lat)))) - 1
				return float64(lat[max(i, 0)]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.99), "p99_ms")
			b.ReportMetric(pct(0.50), "p50_ms")
			b.Logf("GET /api/v1/usage?%s: %d rows, %d requests, p50 %.2f ms, p99 %.2f ms (goal < 50 ms)",
				q.query, q.rows, len(lat), pct(0.50), pct(0.99))
		})
	}
}
