package remediation_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/remediation"
)

var secret = []byte("remediation-test-secret-0123456789abcdef")

// call is one request a service saw, with the identity it verified.
type call struct {
	who  tenancy.Principal
	path string
	body string
}

// service is an owning service (failover or provisioning) that verifies
// the signed identity for its audience, as the real ones do, and answers
// status.
type service struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []call
	status int
}

func newService(t *testing.T, audience string) *service {
	s := &service{status: http.StatusNoContent}
	h := tenancy.Middleware(audience, secret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, call{p, r.URL.Path, string(b)})
		status := s.status
		s.mu.Unlock()
		if status >= 400 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"detail":"a recovery of this instance is in progress"}`)
			return
		}
		w.WriteHeader(status)
	}))
	s.srv = httptest.NewServer(h)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *service) took() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

// recorder is the store's side: tenants that allow remediation and the
// instance's recent runs.
type recorder struct {
	on     map[string]bool
	recent int
	err    error
}

func (r *recorder) Remediation(_ context.Context, tenant string) (bool, error) {
	return r.on[tenant], r.err
}
func (r *recorder) ActionsSince(context.Context, string, time.Time) (int, error) {
	return r.recent, nil
}

func firing(action string, labels alert.LabelSet) *alert.Alert {
	ls := alert.LabelSet{alert.LabelAlertName: "NodeDown", alert.LabelTenant: "acme", alert.LabelInstance: "i1", alert.LabelNode: "i1-n1"}
	for k, v := range labels {
		if v == "" {
			delete(ls, k)
			continue
		}
		ls[k] = v
	}
	return &alert.Alert{Labels: ls, Action: action, State: alert.StateFiring}
}

func TestExecute(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	failover, prov := newService(t, tenancy.AudienceFailover), newService(t, tenancy.AudienceProvisioning)
	failover.status = http.StatusAccepted
	tests := []struct {
		name     string
		action   string
		labels   alert.LabelSet
		rec      recorder
		status   string
		detail   string
		failover []call
		prov     []call
	}{
		{name: "switchover", action: remediation.ActionSwitchover, rec: recorder{on: map[string]bool{"acme": true}},
			status: remediation.StatusSucceeded, failover: []call{{remediation.Identity, "/api/v1/instances/i1/switchover", "{}"}}},
		{name: "rebuild a replica", action: remediation.ActionRebuildReplica, rec: recorder{on: map[string]bool{"acme": true}},
			status: remediation.StatusSucceeded, failover: []call{{remediation.Identity, "/api/v1/instances/i1/nodes/i1-n1/rebuild", ""}}},
		{name: "restart a node: a graceful stop the supervisor answers", action: remediation.ActionRestartNode,
			rec: recorder{on: map[string]bool{"acme": true}}, status: remediation.StatusSucceeded,
			prov: []call{{remediation.Identity, "/internal/v1/failover/instances/i1/nodes/i1-n1/fault", `{"kind":"stop"}`}}},
		{name: "off for the tenant", action: remediation.ActionSwitchover, rec: recorder{on: map[string]bool{"other": true}},
			status: remediation.StatusSkipped, detail: "remediation is off for tenant acme"},
		{name: "off for platform alerts", action: remediation.ActionSwitchover, labels: alert.LabelSet{alert.LabelTenant: ""},
			rec: recorder{on: map[string]bool{"acme": true}}, status: remediation.StatusSkipped, detail: "off for platform alerts"},
		{name: "rate limited", action: remediation.ActionRestartNode, rec: recorder{on: map[string]bool{"acme": true}, recent: 3},
			status: remediation.StatusSkipped, detail: "rate limit: 3 actions on instance i1 within 1h0m0s"},
		{name: "unknown action", action: "reboot-host", rec: recorder{on: map[string]bool{"acme": true}},
			status: remediation.StatusSkipped, detail: `unknown action "reboot-host"`},
		{name: "no node to restart", action: remediation.ActionRestartNode, labels: alert.LabelSet{alert.LabelNode: ""},
			rec: recorder{on: map[string]bool{"acme": true}}, status: remediation.StatusSkipped, detail: "no node label"},
		{name: "setting unreadable", action: remediation.ActionSwitchover, rec: recorder{err: errors.New("db down")},
			status: remediation.StatusFailed, detail: "db down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failover.calls, prov.calls = nil, nil
			r, err := remediation.New(remediation.Config{FailoverURL: failover.srv.URL, ProvisioningURL: prov.srv.URL, Secret: secret}, &tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			run := r.Execute(context.Background(), firing(tt.action, tt.labels), now)
			if run.Status != tt.status || !strings.Contains(run.Detail, tt.detail) {
				t.Fatalf("run %+v, want status %s with detail containing %q", run, tt.status, tt.detail)
			}
			if got := failover.took(); !equalCalls(got, tt.failover) {
				t.Errorf("failover saw %+v, want %+v", got, tt.failover)
			}
			if got := prov.took(); !equalCalls(got, tt.prov) {
				t.Errorf("provisioning saw %+v, want %+v", got, tt.prov)
			}
		})
	}
}

// A refusal by the owning service is a failed run that says why.
func TestExecuteRefused(t *testing.T) {
	failover, prov := newService(t, tenancy.AudienceFailover), newService(t, tenancy.AudienceProvisioning)
	failover.status = http.StatusConflict
	r, err := remediation.New(remediation.Config{FailoverURL: failover.srv.URL, ProvisioningURL: prov.srv.URL, Secret: secret},
		&recorder{on: map[string]bool{"acme": true}})
	if err != nil {
		t.Fatal(err)
	}
	run := r.Execute(context.Background(), firing(remediation.ActionSwitchover, nil), time.Now())
	if run.Status != remediation.StatusFailed || !strings.Contains(run.Detail, "409") || !strings.Contains(run.Detail, "recovery of this instance is in progress") {
		t.Fatalf("run %+v, want failed with the 409's detail", run)
	}
}

// One action at a time per instance: a second alert of the same instance
// while the first action runs is skipped, another instance's is not.
func TestOneActionPerInstance(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	slow := httptest.NewServer(tenancy.Middleware(tenancy.AudienceFailover, secret)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusAccepted)
	})))
	defer slow.Close()
	defer close(release)
	prov := newService(t, tenancy.AudienceProvisioning)
	r, err := remediation.New(remediation.Config{FailoverURL: slow.URL, ProvisioningURL: prov.srv.URL, Secret: secret},
		&recorder{on: map[string]bool{"acme": true}})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan remediation.Run, 1)
	go func() {
		first <- r.Execute(context.Background(), firing(remediation.ActionSwitchover, nil), time.Now())
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first switchover never reached the failover service")
	}
	second := r.Execute(context.Background(), firing(remediation.ActionSwitchover, nil), time.Now())
	if second.Status != remediation.StatusSkipped || !strings.Contains(second.Detail, "another action on instance i1 is running") {
		t.Fatalf("second run %+v, want skipped while the first runs", second)
	}
	release <- struct{}{}
	if run := <-first; run.Status != remediation.StatusSucceeded {
		t.Fatalf("first run %+v", run)
	}
}

func TestNewRequires(t *testing.T) {
	rec := &recorder{}
	for name, cfg := range map[string]remediation.Config{
		"no secret":       {FailoverURL: "http://127.0.0.1:8086", ProvisioningURL: "http://127.0.0.1:8084"},
		"no failover url": {ProvisioningURL: "http://127.0.0.1:8084", Secret: secret},
		"bad url":         {FailoverURL: "127.0.0.1:8086", ProvisioningURL: "http://127.0.0.1:8084", Secret: secret},
	} {
		if _, err := remediation.New(cfg, rec); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if !remediation.Known(remediation.ActionRebuildReplica) || remediation.Known("reboot") {
		t.Error("Known disagrees with the action list")
	}
}

func equalCalls(a, b []call) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
