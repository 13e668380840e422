package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
	"github.com/canopy-platform/canopy/services/alerting/internal/nodes"
	"github.com/canopy-platform/canopy/services/alerting/internal/remediation"
	"github.com/canopy-platform/canopy/services/alerting/internal/webhook"
	"github.com/canopy-platform/canopy/services/alerting/migrations"
)

// Short timers: a group notifies 200ms after its first alert, again 300ms
// after a change.
const (
	groupWait     = 200 * time.Millisecond
	groupInterval = 300 * time.Millisecond
	deadline      = 15 * time.Second
)

// env is one test's database, store and webhook receivers.
type env struct {
	t  testing.TB
	db *store.DB
	st *alertstore.Store
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db := storetest.NewDB(t, "engine_"+t.Name())
	require.NoError(t, db.Migrate(context.Background(), store.OutboxMigrations(), migrations.FS))
	st, err := alertstore.New(db)
	require.NoError(t, err)
	return &env{t: t, db: db, st: st}
}

// receiver stores a platform (tenant "") or tenant receiver posting to h.
func (env *env) receiver(name, tenant string, h *hook, groupBy ...string) alertstore.Receiver {
	env.t.Helper()
	r, err := env.st.CreateReceiver(context.Background(), alertstore.Receiver{
		Tenant: tenant, Name: name, URL: h.srv.URL, GroupBy: groupBy,
		GroupWait: groupWait, GroupInterval: groupInterval, RepeatInterval: time.Hour,
		SendResolved: true,
	})
	require.NoError(env.t, err)
	return r
}

// receiverMatching stores a platform receiver taking the alerts matcher
// selects.
func (env *env) receiverMatching(name string, h *hook, matcher string) alertstore.Receiver {
	env.t.Helper()
	r, err := env.st.CreateReceiver(context.Background(), alertstore.Receiver{
		Name: name, URL: h.srv.URL, Matchers: []string{matcher},
		GroupWait: groupWait, GroupInterval: groupInterval, RepeatInterval: time.Hour, SendResolved: true,
	})
	require.NoError(env.t, err)
	return r
}

// running is a started engine.
type running struct {
	*engine.Engine
	stop func()
}

// start runs an engine on env's database until the test ends (or stop).
func (env *env) start(cfg engine.Config) *running {
	env.t.Helper()
	e := env.build(cfg)
	r := env.run(e)
	select {
	case <-e.Ready():
	case <-time.After(deadline):
		env.t.Fatal("engine not ready")
	}
	return r
}

func (env *env) build(cfg engine.Config) *engine.Engine {
	env.t.Helper()
	return env.buildWith(cfg, nil)
}

// buildWith is build with a remediation runner.
func (env *env) buildWith(cfg engine.Config, act *remediation.Runner) *engine.Engine {
	env.t.Helper()
	send := webhook.NewSender(webhook.SenderConfig{
		Policy: webhook.URLPolicy{AllowPrivate: true}, Timeout: 2 * time.Second,
		BreakerFailures: 5, BreakerOpen: 300 * time.Millisecond,
	})
	e, err := engine.New(cfg, env.db, env.st, send, act, nodes.New(), testLogger(), prometheus.NewRegistry())
	require.NoError(env.t, err)
	return e
}

// run starts e's Run; stop ends it and checks it returned nil.
func (env *env) run(e *engine.Engine) *running {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(env.t, err)
			case <-time.After(deadline):
				env.t.Error("engine did not stop")
			}
		})
	}
	env.t.Cleanup(stop)
	return &running{Engine: e, stop: stop}
}

func testLogger() *slog.Logger {
	if os.Getenv("ENGINE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// hook is a webhook receiver recording what it accepted; fail makes it
// answer that status instead.
type hook struct {
	srv   *httptest.Server
	fail  atomic.Int32
	calls atomic.Int64
	// count only: alerts counts the alerts received, msgs stays empty.
	countOnly bool
	alerts    atomic.Int64
	mu        sync.Mutex
	msgs      []webhook.Message
}

func newHook(t testing.TB) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.calls.Add(1)
		if s := h.fail.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		body, err := io.ReadAll(r.Body)
		if h.countOnly {
			h.alerts.Add(int64(bytes.Count(body, []byte(`"fingerprint"`))))
			return
		}
		var m webhook.Message
		if err == nil {
			err = json.Unmarshal(body, &m)
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.msgs = append(h.msgs, m)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// messages returns a copy of what the hook accepted.
func (h *hook) messages() []webhook.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhook.Message(nil), h.msgs...)
}

// count is how many accepted messages carry an alert named alertname with
// status.
func (h *hook) count(alertname, status string) int {
	n := 0
	for _, m := range h.messages() {
		for _, a := range m.Alerts {
			if a.Labels[alert.LabelAlertName] == alertname && a.Status == status {
				n++
			}
		}
	}
	return n
}

// message waits for the first accepted message with an alert named
// alertname in status.
func (h *hook) message(t testing.TB, alertname, status string) webhook.Message {
	t.Helper()
	var got webhook.Message
	waitFor(t, alertname+" "+status+" notified", func() bool {
		for _, m := range h.messages() {
			for _, a := range m.Alerts {
				if a.Labels[alert.LabelAlertName] == alertname && a.Status == status {
					got = m
					return true
				}
			}
		}
		return false
	})
	return got
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// firing is a pushed firing alert with labels kv.
func firing(kv ...string) *alert.Alert {
	ls := alert.LabelSet{}
	for i := 0; i+1 < len(kv); i += 2 {
		ls[kv[i]] = kv[i+1]
	}
	return &alert.Alert{Labels: ls, Annotations: alert.LabelSet{"summary": "test"}, StartsAt: time.Now()}
}

// resolved is the resolution of a pushed alert with labels kv.
func resolved(kv ...string) *alert.Alert {
	a := firing(kv...)
	a.StartsAt = time.Now().Add(-time.Minute)
	a.EndsAt = time.Now()
	return a
}

// queryInt runs a COUNT-like query.
func (env *env) queryInt(q string, args ...any) int {
	env.t.Helper()
	var n int
	require.NoError(env.t, env.db.SQL().QueryRowContext(context.Background(), q, args...).Scan(&n))
	return n
}
