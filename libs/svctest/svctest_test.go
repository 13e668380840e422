package svctest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/svctest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// echoBinary is testdata/echosvc, built by TestMain.
const echoBinary = "svctest-echosvc"

const (
	secret   = "svctest-secret-0123456789abcdef"
	audience = tenancy.AudienceMetering
)

var member = tenancy.Principal{Tenant: "acme", Role: tenancy.RoleTenantMember, Subject: "apikey:svctest"}

func TestMain(m *testing.M) { os.Exit(svctest.Main(m, "./testdata/echosvc", echoBinary)) }

func startEcho(t testing.TB, env map[string]string) *svctest.Service {
	t.Helper()
	full := map[string]string{"ECHO_SECRET": secret, "ECHO_AUDIENCE": audience}
	for k, v := range env {
		full[k] = v
	}
	return svctest.Start(t, svctest.Config{Binary: echoBinary, AddrEnv: "ECHO_ADDR", Env: full,
		Secret: secret, Audience: audience, ReadyTimeout: 20 * time.Second})
}

// echoed is what echosvc's /echo/ answers.
type echoed struct {
	Tenant, Role, Subject, Method, Path, Body, Env, Accept string
	ContentType                                            string `json:"content_type"`
}

func TestCallIsSignedAndCarriesJSON(t *testing.T) {
	svc := startEcho(t, map[string]string{"ECHO_ENV": "one"})
	var got echoed
	if err := svc.Call(member, http.MethodPost, "/echo/x", map[string]int{"n": 1}, &got); err != nil {
		t.Fatal(err)
	}
	want := echoed{Tenant: "acme", Role: string(tenancy.RoleTenantMember), Subject: "apikey:svctest", Method: "POST",
		Path: "/echo/x", Body: `{"n":1}`, Env: "one", ContentType: "application/json"}
	if got != want {
		t.Fatalf("echo:\n got %+v\nwant %+v", got, want)
	}

	// No body: no content type.
	if err := svc.Call(member, http.MethodGet, "/echo/y", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.Method != "GET" || got.Body != "" || got.ContentType != "" {
		t.Fatalf("GET echo: %+v", got)
	}
}

func TestRequestSendsRawBodyAndHeaders(t *testing.T) {
	svc := startEcho(t, nil)
	code, raw, err := svc.Request(member, http.MethodPut, "/echo/raw", []byte("a,b"),
		http.Header{"Content-Type": {"text/csv"}, "Accept": {"text/plain"}})
	if err != nil || code != http.StatusOK {
		t.Fatalf("request: %d %v %s", code, err, raw)
	}
	for _, want := range []string{`"body":"a,b"`, `"content_type":"text/csv"`, `"accept":"text/plain"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("answer %s lacks %s", raw, want)
		}
	}
}

func TestCallStatuses(t *testing.T) {
	svc := startEcho(t, nil)
	tests := []struct {
		name     string
		svc      *svctest.Service
		path     string
		wantCode int // 0: no error
	}{
		{"error status", svc, "/echo/teapot", http.StatusTeapot},
		{"no content", svc, "/echo/empty", 0},
		{"signed with another secret", svctest.Start(t, svctest.Config{Binary: echoBinary, AddrEnv: "ECHO_ADDR",
			Env: map[string]string{"ECHO_SECRET": secret, "ECHO_AUDIENCE": audience}, Secret: "some-other-secret-0123456789",
			Audience: audience}), "/echo/x", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := echoed{Body: "untouched"}
			err := tc.svc.Call(member, http.MethodGet, tc.path, nil, &out)
			var se *svctest.StatusError
			switch {
			case tc.wantCode == 0 && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantCode == 0 && out.Body != "untouched":
				t.Fatalf("out overwritten: %+v", out)
			case tc.wantCode != 0 && (!errors.As(err, &se) || se.Code != tc.wantCode):
				t.Fatalf("error %v, want a StatusError %d", err, tc.wantCode)
			}
		})
	}
}

func TestStartWaitsForReadiness(t *testing.T) {
	begin := time.Now()
	svc := startEcho(t, map[string]string{"READY_AFTER": "400ms"})
	if took := time.Since(begin); took < 400*time.Millisecond {
		t.Fatalf("Start returned after %s, before /readyz could answer 200", took)
	}
	resp, err := http.Get(svc.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after Start: /readyz %s", resp.Status)
	}
}

func TestKillAndRestart(t *testing.T) {
	svc := startEcho(t, map[string]string{"ECHO_ENV": "mine"})
	// A second service with other values: each keeps its own environment.
	other := startEcho(t, map[string]string{"ECHO_ENV": "other"})
	addr := svc.Addr()
	pid1, err := svc.Metric("echo_pid")
	if err != nil || pid1 == 0 {
		t.Fatalf("pid %v %v", pid1, err)
	}

	svc.Kill()
	if _, err := svc.Metric("echo_pid"); err == nil {
		t.Fatal("killed service still answers")
	}
	if _, err := other.Metric("echo_pid"); err != nil {
		t.Fatalf("the other service: %v", err)
	}
	svc.Kill() // a no-op when not running

	svc.Restart(t)
	pid2, err := svc.Metric("echo_pid")
	if err != nil || pid2 == 0 || pid2 == pid1 {
		t.Fatalf("after restart: pid %v (before %v), %v", pid2, pid1, err)
	}
	if svc.Addr() != addr {
		t.Fatalf("restarted on %s, first on %s", svc.Addr(), addr)
	}
	var got echoed
	if err := svc.Call(member, http.MethodGet, "/echo/env", nil, &got); err != nil || got.Env != "mine" {
		t.Fatalf("after restart: env %q, %v", got.Env, err)
	}
}

// fatalTB records the first Fatalf and stops the calling function, as
// testing.T's does, without failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

type fataled struct{}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fataled{})
}

// fatalOf runs fn with a fatalTB and returns its Fatalf message ("" if none).
func fatalOf(t *testing.T, fn func(tb testing.TB)) (msg string) {
	t.Helper()
	tb := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fataled); !ok {
				panic(r)
			}
			msg = tb.msg
		}
	}()
	fn(tb)
	return ""
}

func TestStartFailsFastWhenTheProcessExits(t *testing.T) {
	begin := time.Now()
	msg := fatalOf(t, func(tb testing.TB) { startEcho(tb, map[string]string{"EXIT_AT_START": "1"}) })
	if !strings.Contains(msg, "exited at start") || !strings.Contains(msg, "told to exit at start") {
		t.Fatalf("failure %q does not say the process exited, with its log", msg)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Fatalf("took %s: waited for the ready timeout instead of the exit", took)
	}
	if msg := fatalOf(t, func(tb testing.TB) { svctest.Start(tb, svctest.Config{Binary: "svctest-not-built"}) }); !strings.Contains(msg, "not on PATH") {
		t.Fatalf("unbuilt binary: %q", msg)
	}
}

func TestMetric(t *testing.T) {
	svc := startEcho(t, nil)
	tests := []struct {
		series string
		want   float64
	}{
		{"echo_requests_total", 12}, // not echo_requests_total_created
		{`echo_requests_total{result="ok"`, 5},
		{`echo_requests_total{result="error",route="/a"}`, 7},
		{`echo_requests_total{result="o`, 0}, // a label value ends where series ends
		{"echo_requests", 0},
		{"absent_total", 0},
	}
	for _, tc := range tests {
		t.Run(tc.series, func(t *testing.T) {
			got, err := svc.Metric(tc.series)
			if err != nil || got != tc.want {
				t.Fatalf("Metric(%s) = %v, %v; want %v", tc.series, got, err, tc.want)
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	calls := 0
	svctest.WaitFor(t, "third call", 5*time.Second, func() (bool, string) {
		calls++
		return calls == 3, fmt.Sprint(calls)
	})
	if calls != 3 {
		t.Fatalf("%d calls", calls)
	}
	begin := time.Now()
	msg := fatalOf(t, func(tb testing.TB) {
		svctest.WaitFor(tb, "never", 100*time.Millisecond, func() (bool, string) { return false, "still no" })
	})
	if msg != "never: not within 100ms; last: still no" {
		t.Fatalf("failure %q", msg)
	}
	if took := time.Since(begin); took < 100*time.Millisecond || took > 5*time.Second {
		t.Fatalf("gave up after %s", took)
	}
}

func TestRandHex(t *testing.T) {
	a, b := svctest.RandHex(t, 4), svctest.RandHex(t, 4)
	if len(a) != 8 || a == b {
		t.Fatalf("RandHex: %q %q", a, b)
	}
}

func TestStartKafkaPartitions(t *testing.T) {
	tests := []struct {
		name  string
		start func(t *testing.T) string
		want  int
	}{
		{"default", func(t *testing.T) string { return svctest.StartKafka(t) }, devkafka.DefaultPartitions},
		{"one", func(t *testing.T) string { return svctest.StartKafkaWith(t, devkafka.Config{Partitions: 1}) }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.start(t)
			w := &kafka.Writer{Addr: kafka.TCP(addr), AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond}
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := w.WriteMessages(ctx, kafka.Message{Topic: "svctest.t", Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			conn, err := kafka.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			parts, err := conn.ReadPartitions("svctest.t")
			if err != nil || len(parts) != tc.want {
				t.Fatalf("%d partitions, %v; want %d", len(parts), err, tc.want)
			}
		})
	}
}

func TestBuildFails(t *testing.T) {
	path := os.Getenv("PATH")
	if _, err := svctest.Build("./testdata/missing", "svctest-missing"); err == nil {
		t.Fatal("built a missing package")
	}
	if os.Getenv("PATH") != path {
		t.Fatal("a failed build changed PATH")
	}
}
