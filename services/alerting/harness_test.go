package alerting_test

// The service-level harness: the alerting binary as a subprocess (so that
// a kill is a real SIGKILL), the embedded Kafka broker in the test process,
// a per-test database on the machine's MariaDB, and webhook receivers as
// test HTTP servers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// binary is the alerting command TestMain builds into a temporary PATH entry.
const binary = "canopy-alerting-svctest"

const secret = "svc-test-internal-secret-0123456789"

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "alerting-svctest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", filepath.Join(dir, binary), "./cmd/alerting")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cmd/alerting:", err)
		return 1
	}
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return m.Run()
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func startKafka(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := devkafka.Start(ctx, devkafka.Config{Addr: "127.0.0.1:0", Partitions: 3}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// service is the alerting binary, restartable on its database.
type service struct {
	proc *enginetest.Proc
	db   string
}

// startService configures (through the environment the subprocess
// inherits) and starts alerting; its database is dropped when the test
// ends. Receivers on 127.0.0.1 are allowed (test servers).
func startService(t *testing.T, broker string, extraEnv map[string]string) *service {
	t.Helper()
	db := "alerting_svc_" + randHex(t, 4)
	proc := enginetest.New(t, binary, func(*enginetest.Proc, bool) []string { return nil }, nil)
	env := map[string]string{
		"CANOPY_ALERTING_ADDR":                   proc.Addr,
		"CANOPY_MYSQL_DSN":                       "root@tcp(127.0.0.1:3306)/",
		"CANOPY_ALERTING_DATABASE":               db,
		"CANOPY_KAFKA_BROKERS":                   broker,
		"CANOPY_INTERNAL_SECRET":                 secret,
		"CANOPY_ALERTING_ALLOW_PRIVATE_WEBHOOKS": "true",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Cleanup(func() {
		proc.Kill()
		root, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/")
		if err == nil {
			_, _ = root.Exec("DROP DATABASE IF EXISTS " + db)
			root.Close()
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("alerting log tail:\n%s", proc.Tail())
		}
	})
	s := &service{proc: proc, db: db}
	s.start(t)
	return s
}

// start starts the process and waits until it is ready (the engine holds
// its lock and has loaded its state).
func (s *service) start(t *testing.T) {
	t.Helper()
	s.proc.Start()
	waitFor(t, "alerting ready", 60*time.Second, func() (bool, string) {
		resp, err := http.Get("http://" + s.proc.Addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status + " " + s.proc.Tail()
	})
}

// request sends a request signed the way the gateway signs it and returns
// the status and body.
func (s *service) request(p tenancy.Principal, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+s.proc.Addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tenancy.NewSigner([]byte(secret)).SignRequest(req, body, tenancy.AudienceAlerting, p)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// call is request with JSON in and out; a status ≥ 300 is an error.
func (s *service) call(p tenancy.Principal, method, path string, in, out any) error {
	var b []byte
	if in != nil {
		var err error
		if b, err = json.Marshal(in); err != nil {
			return err
		}
	}
	code, raw, err := s.request(p, method, path, b)
	if err != nil {
		return err
	}
	if code >= 300 {
		return fmt.Errorf("%s %s: %d: %s", method, path, code, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, path, err, raw)
		}
	}
	return nil
}

// metric reads one series of the service's /metrics (the sum of the lines
// whose name and labels start with series, e.g.
// `canopy_alerting_notifications_total{result="sent"}`); 0 when absent.
func (s *service) metric(series string) (float64, error) {
	resp, err := http.Get("http://" + s.proc.Addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, series) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}
