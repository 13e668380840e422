package provisioning

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLostStateDirIsRefused: the development secrets key goes missing (the
// state directory was deleted) while the database keeps an instance's
// sealed credentials. Provisioning refuses to start with a message saying
// what happened and what to do, and does not keep the key it generated
// (a second start refuses too); with the old key back it starts and the
// instance is as it was.
func TestLostStateDirIsRefused(t *testing.T) {
	e := newEnv(t)
	s := newStack(t, e, nil) // no CANOPY_SECRETS_KEY: the key is generated into the state dir
	s.start()
	c := s.as("acme")
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "kept", "plan_id": planRedisDev})
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)
	c.waitState(id, readyWithin, "ready")
	s.stopService()

	keyFile := filepath.Join(s.stateDir, "secrets.key")
	oldKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		err := s.run(t)
		t.Logf("start %d refused: %v", attempt, err)
		var lost *SecretsKeyLostError
		if !errors.As(err, &lost) {
			t.Fatalf("start %d without the key: %v, want a SecretsKeyLostError", attempt, err)
		}
		if lost.Sealed == 0 || lost.Database != s.cfg.Database || !strings.Contains(err.Error(), "make reset") || !strings.Contains(err.Error(), "Restore the state directory") {
			t.Fatalf("start %d: unclear refusal: %v", attempt, err)
		}
		if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("start %d kept the key it generated (stat: %v)", attempt, err)
		}
	}

	if err := os.WriteFile(keyFile, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	if got := c.do("GET", "/api/v1/instances/"+id, nil); got.status != http.StatusOK || got.json(t)["state"] != "ready" {
		t.Fatalf("instance with the key restored: %d %s", got.status, got.body)
	}
}

// run runs the service expecting it to stop on its own before it is ready,
// and returns why.
func (s *stack) run(t *testing.T) error {
	t.Helper()
	sv, err := New(s.cfg, Deps{Logger: testLogger(t), Registry: prometheus.NewRegistry(), Publisher: contractChecked(t, s.env.pub)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sv.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-sv.Ready():
		cancel()
		<-done
		t.Fatal("service started")
	case <-ctx.Done():
		t.Fatal("service neither started nor stopped within a minute")
	}
	return nil
}
