package metering_test

// The service-level harness: the metering binary as a subprocess (so that
// a kill is a real SIGKILL), the embedded Kafka broker in the test process
// and a per-test database on the machine's MariaDB.

import (
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
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// binary is the metering command TestMain builds into a temporary PATH entry.
const binary = "canopy-metering-svctest"

const secret = "svc-test-internal-secret-0123456789"

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "metering-svctest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", filepath.Join(dir, binary), "./cmd/metering")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cmd/metering:", err)
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

// service is the metering binary, restartable on its database.
type service struct {
	proc *enginetest.Proc
	db   string
}

// startService configures (through the environment the subprocess
// inherits) and starts metering; its database is dropped when the test ends.
func startService(t *testing.T, broker string, extraEnv map[string]string) *service {
	t.Helper()
	db := "metering_svc_" + randHex(t, 4)
	proc := enginetest.New(t, binary, func(*enginetest.Proc, bool) []string { return nil }, nil)
	env := map[string]string{
		"CANOPY_METERING_ADDR":     proc.Addr,
		"CANOPY_MYSQL_DSN":         "root@tcp(127.0.0.1:3306)/",
		"CANOPY_METERING_DATABASE": db,
		"CANOPY_KAFKA_BROKERS":     broker,
		"CANOPY_INTERNAL_SECRET":   secret,
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
			t.Logf("metering log tail:\n%s", proc.Tail())
		}
	})
	s := &service{proc: proc, db: db}
	s.start(t)
	return s
}

// start starts the process and waits until it is ready.
func (s *service) start(t *testing.T) {
	t.Helper()
	s.proc.Start()
	waitFor(t, "metering ready", 60*time.Second, func() (bool, string) {
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
func (s *service) request(p tenancy.Principal, method, path, contentType string, body []byte, accept string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+s.proc.Addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	tenancy.NewSigner([]byte(secret)).SignRequest(req, body, tenancy.AudienceMetering, p)
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
	code, raw, err := s.request(p, method, path, "application/json", b, "")
	if err != nil {
		return err
	}
	if code >= 300 {
		return fmt.Errorf("%s %s: %d: %s", method, path, code, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w: %s", method, path, err, raw)
		}
	}
	return nil
}

// usageRow is a row of GET /api/v1/usage.
type usageRow struct {
	WindowStart time.Time `json:"window_start"`
	Meter       string    `json:"meter"`
	Instance    string    `json:"instance_id"`
	Value       float64   `json:"value"`
}

// usage sums a meter's values over a query's rows.
func (s *service) usage(p tenancy.Principal, query string) ([]usageRow, error) {
	var out struct {
		Data []usageRow `json:"data"`
	}
	err := s.call(p, http.MethodGet, "/api/v1/usage?"+query, nil, &out)
	return out.Data, err
}
