package launch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/obs"
	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
)

var gadgets = fstest.MapFS{"0001_gadgets.up.sql": {Data: []byte("CREATE TABLE gadgets (id INT PRIMARY KEY)")}}

// TestDatabaseStages: "database" opens the configured database and closes it
// at stop; "migrate" applies the outbox migration and the service's, in order.
func TestDatabaseStages(t *testing.T) {
	ctx := context.Background()
	cfg := storetest.NewConfig(t, t.Name())
	var db *store.DB
	database, migrate := DatabaseStages(cfg, obs.NopLogger(), &db, gadgets)
	require.Equal(t, "database", database.Name)
	require.Equal(t, "migrate", migrate.Name)

	require.NoError(t, database.Start(ctx))
	require.NotNil(t, db)
	require.Equal(t, cfg.Database, db.Name())
	require.NoError(t, migrate.Start(ctx))
	require.NoError(t, migrate.Start(ctx), "migrating twice is a no-op")

	var versions []int
	rows, err := db.SQL().QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	require.NoError(t, err)
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		versions = append(versions, v)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int{0, 1}, versions, "outbox (0) then the service's (1)")
	_, err = db.SQL().ExecContext(ctx, "INSERT INTO gadgets VALUES (1)")
	require.NoError(t, err)

	require.NoError(t, database.Stop(ctx))
	require.Error(t, db.SQL().PingContext(ctx), "closed at stop")
}

func TestDatabaseStagesOpenFails(t *testing.T) {
	var db *store.DB
	cfg := storetest.NewConfig(t, t.Name())
	cfg.DSN = "root@tcp(127.0.0.1:1)/?timeout=1s"
	database, _ := DatabaseStages(cfg, obs.NopLogger(), &db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.Error(t, database.Start(ctx))
}

type recordingPublisher struct {
	mu     sync.Mutex
	topics []string
	got    chan struct{}
}

func (p *recordingPublisher) Publish(_ context.Context, topic string, evs ...eventbus.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range evs {
		p.topics = append(p.topics, topic)
	}
	select {
	case p.got <- struct{}{}:
	default:
	}
	return nil
}

// TestRelayStage: the "outbox relay" stage publishes what is written to the
// outbox until its context ends, then returns nil.
func TestRelayStage(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewDB(t, t.Name())
	require.NoError(t, db.Migrate(ctx, store.OutboxMigrations()))
	pub := &recordingPublisher{got: make(chan struct{}, 1)}
	st := RelayStage(&db, pub, store.RelayConfig{PollInterval: 10 * time.Millisecond}, obs.NopLogger(), prometheus.NewRegistry())
	require.Equal(t, "outbox relay", st.Name)

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(rctx) }()
	ev, err := eventbus.NewEvent("test.gadget.made", "/test", "g1", struct{}{})
	require.NoError(t, err)
	require.NoError(t, db.Tx(ctx, func(tx *store.Tx) error { return tx.Emit(ctx, "canopy.test.gadgets", ev) }))
	select {
	case <-pub.got:
	case <-time.After(20 * time.Second):
		t.Fatal("nothing published within 20s")
	}
	pub.mu.Lock()
	require.Equal(t, []string{"canopy.test.gadgets"}, pub.topics)
	pub.mu.Unlock()

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not stop within 20s")
	}
}

func TestThen(t *testing.T) {
	errFirst := errors.New("first")
	tests := []struct {
		name     string
		start    func(context.Context) error
		wantErr  error
		wantThen bool
	}{
		{name: "after start", start: func(context.Context) error { return nil }, wantThen: true},
		{name: "no start", wantThen: true},
		{name: "start fails", start: func(context.Context) error { return errFirst }, wantErr: errFirst},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			st := Then(Stage{Name: "migrate", Start: tc.start}, func(context.Context) error { ran = true; return nil })
			require.Equal(t, "migrate", st.Name)
			require.ErrorIs(t, st.Start(context.Background()), tc.wantErr)
			if tc.wantErr == nil {
				require.NoError(t, st.Start(context.Background()))
			}
			require.Equal(t, tc.wantThen, ran)
		})
	}
}

func TestRequire(t *testing.T) {
	var nilPub *recordingPublisher
	tests := []struct {
		name  string
		pairs []any
		want  string
	}{
		{name: "all set", pairs: []any{"logger", obs.NopLogger(), "metrics registry", prometheus.NewRegistry()}},
		{name: "nil logger first", pairs: []any{"logger", nil, "metrics registry", nil}, want: "widget: nil logger"},
		{name: "typed nil in interface", pairs: []any{"logger", obs.NopLogger(), "event publisher", store.Publisher(nilPub)}, want: "widget: nil event publisher"},
		{name: "nil func", pairs: []any{"clock", (func() time.Time)(nil)}, want: "widget: nil clock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Require("widget", tc.pairs...)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
		})
	}
	require.Panics(t, func() { _ = Require("widget", "logger") })
}

func TestBase(t *testing.T) {
	b := NewBase("widget", obs.NopLogger(), 0, "replica", "r1")
	require.NotNil(t, b.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.RunStages(ctx, Stage{Name: "noop"}) }()
	select {
	case <-b.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready within 10s")
	}
	require.Equal(t, "", b.Addr(), "no http stage")
	cancel()
	require.NoError(t, <-done)
}
