package launch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/httpx"
)

// journal records what stages did, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}

// stage records its start, the end of its Run and its stop.
func (j *journal) stage(name string) Stage {
	return Stage{
		Name:  name,
		Start: func(context.Context) error { j.add("start " + name); return nil },
		Run: func(ctx context.Context) error {
			<-ctx.Done()
			j.add("run ended " + name)
			return nil
		},
		Stop: func(context.Context) error { j.add("stop " + name); return nil },
	}
}

// runAsync runs l with stages and returns its result channel once l is ready.
func runAsync(t *testing.T, ctx context.Context, l *Lifecycle, stages ...Stage) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, stages...) }()
	select {
	case <-l.Ready():
	case err := <-done:
		t.Fatalf("lifecycle ended before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("lifecycle not ready within 10s")
	}
	return done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("lifecycle did not return within 10s")
		return nil
	}
}

func TestLifecycleStartsInOrderAndStopsInReverse(t *testing.T) {
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	l := NewLifecycle("svc", time.Second, nil)
	done := runAsync(t, ctx, l, j.stage("database"), j.stage("relay"), j.stage("http"))
	require.Equal(t, []string{"start database", "start relay", "start http"}, j.list())

	cancel()
	require.NoError(t, wait(t, done))
	require.Equal(t, []string{
		"start database", "start relay", "start http",
		"run ended http", "stop http",
		"run ended relay", "stop relay",
		"run ended database", "stop database",
	}, j.list())
	require.ErrorIs(t, l.Run(context.Background()), ErrRunTwice)
}

func TestLifecycleStopIsBounded(t *testing.T) {
	var j journal
	release := make(chan struct{})
	defer close(release)
	stubborn := Stage{Name: "stubborn", Run: func(context.Context) error {
		<-release // ignores cancellation
		return nil
	}}
	slowStop := Stage{Name: "slow close", Stop: func(context.Context) error {
		<-release // ignores its deadline
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	l := NewLifecycle("svc", 50*time.Millisecond, nil)
	done := runAsync(t, ctx, l, j.stage("first"), slowStop, stubborn, j.stage("last"))
	cancel()
	err := wait(t, done)
	require.ErrorContains(t, err, "svc: ")
	require.ErrorContains(t, err, "stubborn: did not stop within 50ms")
	require.ErrorContains(t, err, "slow close: did not stop within 50ms")
	// The stages around the abandoned ones still stopped, in order.
	require.Equal(t, []string{"start first", "start last", "run ended last", "stop last", "run ended first", "stop first"}, j.list())
}

func TestLifecycleFailureStopsTheRest(t *testing.T) {
	boom := errors.New("lost the broker")
	t.Run("a running stage fails", func(t *testing.T) {
		var j journal
		fail := make(chan struct{})
		worker := Stage{Name: "consumer", Run: func(ctx context.Context) error {
			select {
			case <-fail:
				return boom
			case <-ctx.Done():
				return nil
			}
		}}
		l := NewLifecycle("svc", time.Second, nil)
		done := runAsync(t, context.Background(), l, j.stage("relay"), worker, j.stage("http"))
		close(fail)
		err := wait(t, done)
		require.ErrorIs(t, err, boom)
		require.EqualError(t, err, "svc: consumer: lost the broker", "the failure once, named, nothing else")
		require.Equal(t, []string{"start relay", "start http", "run ended http", "stop http", "run ended relay", "stop relay"}, j.list())
	})
	t.Run("a start fails", func(t *testing.T) {
		var j journal
		migrate := Stage{Name: "migrate", Start: func(context.Context) error { return boom }}
		l := NewLifecycle("svc", time.Second, nil)
		err := l.Run(context.Background(), j.stage("database"), migrate, j.stage("http"))
		require.ErrorIs(t, err, boom)
		require.EqualError(t, err, "svc: migrate: lost the broker")
		require.Equal(t, []string{"start database", "run ended database", "stop database"}, j.list(), "later stages never start")
		select {
		case <-l.Ready():
			t.Fatal("ready after a failed start")
		default:
		}
	})
	t.Run("a stage ending without an error is done, not failed", func(t *testing.T) {
		var j journal
		once := Stage{Name: "reseal", Run: func(context.Context) error { j.add("resealed"); return nil }}
		ctx, cancel := context.WithCancel(context.Background())
		l := NewLifecycle("svc", time.Second, nil)
		done := runAsync(t, ctx, l, once, j.stage("http"))
		require.Eventually(t, func() bool { return len(j.list()) == 2 }, 5*time.Second, 5*time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("stopped after a stage finished its work: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		cancel()
		require.NoError(t, wait(t, done))
	})
}

// TestLifecycleUnreadyBeforeDrain: when the service stops, every listener's
// /readyz fails while the first one (the last started) still drains its
// requests.
func TestLifecycleUnreadyBeforeDrain(t *testing.T) {
	inFlight, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(inFlight)
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	cfg := httpx.Config{Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second}
	internal := Serve("internal http", func(context.Context) (*httpx.Server, error) {
		return httpx.NewServer(cfg, http.NotFoundHandler(), nil, nil), nil
	})
	public := Serve("http", func(context.Context) (*httpx.Server, error) {
		return httpx.NewServer(cfg, slow, nil, nil), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	l := NewLifecycle("svc", 10*time.Second, nil)
	done := runAsync(t, ctx, l, internal, public)
	require.NotEmpty(t, l.Addr("http"))
	require.NotEmpty(t, l.Addr("internal http"))
	require.Equal(t, http.StatusOK, status(t, "http://"+l.Addr("internal http")+"/readyz"))

	reqDone := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr("http") + "/slow")
		if err != nil {
			reqDone <- 0
			return
		}
		resp.Body.Close()
		reqDone <- resp.StatusCode
	}()
	<-inFlight
	cancel()
	require.Eventually(t, func() bool {
		return status(t, "http://"+l.Addr("internal http")+"/readyz") == http.StatusServiceUnavailable
	}, 5*time.Second, 10*time.Millisecond, "internal listener unready while the public one drains")
	select {
	case <-reqDone:
		t.Fatal("the in-flight request ended before readiness turned false")
	default:
	}
	close(release)
	require.Equal(t, http.StatusNoContent, <-reqDone, "the in-flight request is drained, not cut")
	require.NoError(t, wait(t, done))
}

func TestLifecycleListenFails(t *testing.T) {
	taken := httpx.NewServer(httpx.Config{Addr: "127.0.0.1:0"}, nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = taken.Run(ctx) }()
	<-taken.Ready()

	var j journal
	l := NewLifecycle("svc", time.Second, nil)
	err := l.Run(context.Background(), j.stage("relay"), Serve("http", func(context.Context) (*httpx.Server, error) {
		return httpx.NewServer(httpx.Config{Addr: taken.Addr()}, nil, nil, nil), nil
	}))
	require.ErrorContains(t, err, "svc: http: listen on "+taken.Addr())
	require.Equal(t, 1, strings.Count(err.Error(), "listen on"), "reported once: %v", err)
	require.Equal(t, []string{"start relay", "run ended relay", "stop relay"}, j.list())
}

func TestLifecycleStopDuringStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var j journal
	cancelling := Stage{Name: "seed", Start: func(context.Context) error { cancel(); return nil }}
	l := NewLifecycle("svc", time.Second, nil)
	require.NoError(t, l.Run(ctx, j.stage("database"), cancelling, j.stage("http")), "a stop during start is a clean stop")
	require.Equal(t, []string{"start database", "run ended database", "stop database"}, j.list())
}

// TestLifecycleStopInterruptsStart: a stop that cuts a stage's start short
// (its work fails with ctx's error, as a migration does on SIGTERM) is a
// clean stop too; a start failing for its own reason is still a failure.
func TestLifecycleStopInterruptsStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var j journal
	interrupted := Stage{Name: "migrate", Start: func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return fmt.Errorf("put bootstrap key: %w", ctx.Err())
	}}
	l := NewLifecycle("svc", time.Second, nil)
	require.NoError(t, l.Run(ctx, j.stage("database"), interrupted, j.stage("http")), "a start cut short by a stop is a clean stop")
	require.Equal(t, []string{"start database", "run ended database", "stop database"}, j.list())

	failing := Stage{Name: "migrate", Start: func(context.Context) error { return context.DeadlineExceeded }}
	l = NewLifecycle("svc", time.Second, nil)
	require.ErrorIs(t, l.Run(context.Background(), failing), context.DeadlineExceeded, "the stage's own timeout is a failure")
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTogether(t *testing.T) {
	boom := errors.New("boom")
	var stopped sync.WaitGroup
	stopped.Add(2)
	member := func(ctx context.Context) error { defer stopped.Done(); <-ctx.Done(); return nil }
	failing := func(context.Context) error { return boom }
	err := Together(member, failing, member)(context.Background())
	require.ErrorIs(t, err, boom, "the first error cancels the others and is returned")
	stopped.Wait()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	idle := func(ctx context.Context) error { <-ctx.Done(); return nil }
	require.NoError(t, Together(idle, idle)(ctx))
}
