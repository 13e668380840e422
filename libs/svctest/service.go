package svctest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// DefaultReadyTimeout bounds each start's wait for /readyz when
// Config.ReadyTimeout is zero.
const DefaultReadyTimeout = 60 * time.Second

// Config says how to run one service binary.
type Config struct {
	// Binary is the command's name on PATH (see Build).
	Binary string
	// AddrEnv names the variable that tells the service the host:port to
	// listen on (e.g. CANOPY_METERING_ADDR); Start sets it to a free
	// loopback port that stays the same across restarts.
	AddrEnv string
	// Env is the rest of the service's environment, on top of the test
	// process's own.
	Env map[string]string
	// Secret is the internal secret requests are signed with; Audience is
	// the service's tenancy audience (tenancy.AudienceMetering, …).
	Secret   string
	Audience string
	// ReadyTimeout bounds each start's wait for GET /readyz to answer 200
	// (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
}

// Service is a running service binary that a test can call, SIGKILL and
// start again on the same address. Its methods other than Restart may be
// called from any goroutine.
type Service struct {
	cfg    Config
	proc   *enginetest.Proc
	signer *tenancy.Signer
	client *http.Client
}

// Start runs cfg.Binary with its environment and waits until GET /readyz
// answers 200; it fails the test otherwise. The process is SIGKILLed when
// the test ends, and its log's tail is logged if the test failed.
func Start(t testing.TB, cfg Config) *Service {
	t.Helper()
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if _, err := exec.LookPath(cfg.Binary); err != nil {
		t.Fatalf("svctest: %s is not on PATH (built by svctest.Build in TestMain?): %v", cfg.Binary, err)
	}
	s := &Service{cfg: cfg, signer: tenancy.NewSigner([]byte(cfg.Secret)), client: &http.Client{Timeout: time.Minute}}
	// The environment goes on the command line of env(1), which execs the
	// binary in place (same pid, so a kill still hits the service): each
	// service keeps its own environment across restarts, and the test
	// process's environment is left alone (no t.Setenv, which would also
	// forbid t.Parallel).
	s.proc = enginetest.New(t, "env", func(p *enginetest.Proc, _ bool) []string {
		return append(envArgs(cfg.AddrEnv, p.Addr, cfg.Env), cfg.Binary)
	}, s.ready)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log tail:\n%s", cfg.Binary, s.proc.Tail())
		}
	})
	s.Restart(t)
	return s
}

// envArgs returns env(1)'s NAME=VALUE arguments, sorted for a readable
// command line.
func envArgs(addrEnv, addr string, env map[string]string) []string {
	args := make([]string, 0, len(env)+1)
	for k, v := range env {
		args = append(args, k+"="+v)
	}
	slices.Sort(args)
	if addrEnv != "" {
		args = append(args, addrEnv+"="+addr)
	}
	return args
}

// ready is the process's readiness wait: /readyz answering 200, or the
// process exiting, or ReadyTimeout passing.
func (s *Service) ready(p *enginetest.Proc, exited <-chan struct{}) error {
	return enginetest.WaitUntil(p, exited, s.cfg.ReadyTimeout, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /readyz: %s", resp.Status)
		}
		return nil
	})
}

// Restart starts the service again after Kill, on the same address and
// environment, and waits until it is ready; it fails the test otherwise.
func (s *Service) Restart(t testing.TB) {
	t.Helper()
	if err := s.proc.TryStart(); err != nil {
		t.Fatalf("start %s: %v", s.cfg.Binary, err)
	}
}

// Kill sends SIGKILL to the service and waits until it is reaped: a crash,
// with no shutdown path run. A no-op when it is not running.
func (s *Service) Kill() {
	s.proc.Kill()
	// Pooled connections died with it.
	s.client.CloseIdleConnections()
}

// Addr is the host:port the service listens on.
func (s *Service) Addr() string { return s.proc.Addr }

// URL is the service's base URL, http://host:port.
func (s *Service) URL() string { return "http://" + s.proc.Addr }

// Tail returns the end of the service's log, for failure messages.
func (s *Service) Tail() string { return s.proc.Tail() }

// Request sends body (nil for none) to path, signed as p the way the
// gateway signs for the service's audience, with header's values added,
// and returns the status and the response body.
func (s *Service) Request(p tenancy.Principal, method, path string, body []byte, header http.Header) (int, []byte, error) {
	req, err := http.NewRequest(method, s.URL()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	s.signer.SignRequest(req, body, s.cfg.Audience, p)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, raw, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return resp.StatusCode, raw, nil
}

// StatusError is Call's error for an answer of status 300 or more.
type StatusError struct {
	Method, Path string
	Code         int
	Body         []byte
}

// Error says the request, the status and the body.
func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Body)
}

// Call is Request with JSON: in (unless nil) is the body, sent as
// application/json; a 2xx answer's body (if any) is decoded into out
// (unless nil); any other status is a *StatusError.
func (s *Service) Call(p tenancy.Principal, method, path string, in, out any) error {
	var body []byte
	var header http.Header
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		header = http.Header{"Content-Type": {"application/json"}}
	}
	code, raw, err := s.Request(p, method, path, body, header)
	if err != nil {
		return err
	}
	if code >= 300 {
		return &StatusError{Method: method, Path: path, Code: code, Body: raw}
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w: %s", method, path, err, strings.TrimSpace(string(raw)))
		}
	}
	return nil
}
