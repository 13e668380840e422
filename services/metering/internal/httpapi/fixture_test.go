package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/devkafka/devkafkatest"
	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/httpapi"
	"github.com/canopy-platform/canopy/services/metering/internal/ingest"
	"github.com/canopy-platform/canopy/services/metering/internal/usage"
	"github.com/canopy-platform/canopy/services/metering/migrations"
)

// The callers of the tests.
var (
	acmeMember   = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:m"}
	acmeViewer   = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantViewer, Subject: "apikey:v"}
	globexMember = tenancy.Principal{Tenant: "globex", Role: tenancy.RoleTenantMember, Subject: "apikey:g"}
	admin        = tenancy.Principal{Role: tenancy.RolePlatformAdmin, Subject: "apikey:root"}
	nobody       = tenancy.Principal{}
)

// now is the API's clock in the tests: whole milliseconds, as Kafka
// record times are.
var now = time.Date(2026, 12, 3, 12, 30, 0, 0, time.UTC)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Test headers carrying the principal the test middleware puts in the
// context (what tenancy.Middleware does after verifying a signature).
const (
	roleHeader   = "X-Test-Role"
	tenantHeader = "X-Test-Tenant"
)

func withPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if role := r.Header.Get(roleHeader); role != "" {
			p := tenancy.Principal{Role: tenancy.Role(role), Tenant: tenancy.ID(r.Header.Get(tenantHeader)), Subject: "test"}
			r = r.WithContext(tenancy.WithPrincipal(r.Context(), p))
		}
		next.ServeHTTP(w, r)
	})
}

type fixture struct {
	t       testing.TB
	srv     *httptest.Server
	db      *store.DB
	usage   *usage.Store
	brokers []string
}

// newFixture serves the API over a fresh database (migrated, built-in
// meters, instances i1 and i2 of acme and i3 of globex) and an embedded
// broker with the ingest topic.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	brokers := devkafkatest.Start(t, events.TopicUsageIngest)
	pub, err := ingest.New(ingest.Config{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pub.Close()) })
	return newFixtureWith(t, brokers, pub)
}

func newFixtureWith(t testing.TB, brokers []string, pub httpapi.Publisher) *fixture {
	t.Helper()
	ctx := context.Background()
	db := storetest.NewDB(t, "metering_api")
	require.NoError(t, db.Migrate(ctx, store.OutboxMigrations(), migrations.FS))
	us, err := usage.New(db)
	require.NoError(t, err)
	require.NoError(t, us.EnsureBuiltins(ctx))
	_, err = db.SQL().ExecContext(ctx, `INSERT INTO instances (instance_id, tenant_id, plan_id, region, created_at, updated_at) VALUES
		('i1', 'acme', 'small', 'eu', NOW(6), NOW(6)), ('i2', 'acme', 'large', 'us', NOW(6), NOW(6)),
		('i3', 'globex', 'small', 'eu', NOW(6), NOW(6))`)
	require.NoError(t, err)
	api, err := httpapi.New(httpapi.Deps{Usage: us, Ingest: pub, Now: func() time.Time { return now }, MaxBatch: 1000, MaxBody: 1 << 20})
	require.NoError(t, err)
	r := chi.NewRouter()
	r.Use(withPrincipal)
	api.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, db: db, usage: us, brokers: brokers}
}

// do sends a request as p and returns the status, headers and body.
func (f *fixture) do(p tenancy.Principal, method, path, contentType string, body []byte, hdr ...string) (int, http.Header, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	require.NoError(f.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if p.Role != "" {
		req.Header.Set(roleHeader, string(p.Role))
		req.Header.Set(tenantHeader, string(p.Tenant))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := f.srv.Client().Do(req)
	require.NoError(f.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(f.t, err)
	return res.StatusCode, res.Header, b
}

// problem decodes a problem+json answer.
func problem(t testing.TB, h http.Header, body []byte) httpx.Problem {
	t.Helper()
	require.Equal(t, httpx.ProblemContentType, h.Get("Content-Type"), "body: %s", body)
	var p httpx.Problem
	require.NoError(t, json.Unmarshal(body, &p))
	return p
}

func fieldsOf(p httpx.Problem) []string {
	out := make([]string, len(p.Errors))
	for i, e := range p.Errors {
		out[i] = e.Field
	}
	return out
}

// readTopic returns every record on the ingest topic, per partition in
// offset order, partitions in order.
func readTopic(t testing.TB, brokers []string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	var reqs []kafka.OffsetRequest
	for p := range devkafkatest.Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{events.TopicUsageIngest: reqs}})
	require.NoError(t, err)
	parts := res.Topics[events.TopicUsageIngest]
	require.Len(t, parts, devkafkatest.Partitions)
	sort.Slice(parts, func(i, j int) bool { return parts[i].Partition < parts[j].Partition })
	var out []kafka.Message
	for _, po := range parts {
		require.NoError(t, po.Error)
		if po.LastOffset == 0 {
			continue
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: events.TopicUsageIngest, Partition: po.Partition, MaxWait: 100 * time.Millisecond})
		for {
			m, err := rd.ReadMessage(ctx)
			require.NoError(t, err)
			out = append(out, m)
			if m.Offset+1 >= po.LastOffset {
				break
			}
		}
		require.NoError(t, rd.Close())
	}
	return out
}
