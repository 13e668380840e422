package e2e

import (
	"testing"
	"time"
)

// waitFor polls cond every interval until it reports done, and fails the test
// after timeout with what (the awaited condition) and cond's last status, so
// a failure says what was expected and what was seen. cond's status is a
// short description of the current state ("state provisioning, step
// replicating"); an error from cond is a status too (the condition may be
// met later), except when it is fatal — then call t.Fatal inside cond.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (done bool, status string)) time.Duration {
	t.Helper()
	const interval = 100 * time.Millisecond
	start := time.Now()
	deadline := start.Add(timeout)
	last := "(not checked yet)"
	for {
		done, status := cond()
		if done {
			return time.Since(start)
		}
		last = status
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(interval)
	}
}
