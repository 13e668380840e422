// Package svctest runs a service's own binary as a subprocess for
// service-level tests: TestMain builds the command onto PATH, a test starts
// it with its environment, waits for /readyz, calls its API signed the way
// the gateway signs, reads its /metrics, and SIGKILLs and restarts it (a
// kill of a subprocess is a real crash, which an in-process server cannot
// give). It also holds the small pieces those tests share: an embedded
// Kafka broker, polling a condition with a deadline and random names.
//
// It is test support: import it only from _test files. It knows nothing of
// any one service (databases, topics, fixtures stay with each service's
// harness) and it is not a client library.
package svctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/devkafka"
)

// pollInterval is how often WaitFor evaluates its condition.
const pollInterval = 20 * time.Millisecond

// Build compiles the command package pkg (e.g. "./cmd/metering", relative
// to the test's package directory) as name into a fresh directory and puts
// that directory first on PATH, so that Start can run it by name. Call it
// from TestMain before m.Run; cleanup restores PATH and removes the
// directory. The build's output goes to stderr.
func Build(pkg, name string) (cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "svctest-bin-")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", pkg, err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build %s: %w", pkg, err)
	}
	oldPath := os.Getenv("PATH")
	if err := os.Setenv("PATH", dir+string(os.PathListSeparator)+oldPath); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build %s: set PATH: %w", pkg, err)
	}
	return func() {
		_ = os.Setenv("PATH", oldPath)
		os.RemoveAll(dir)
	}, nil
}

// Main is a TestMain body for a package whose tests run one command: it
// builds pkg as name onto PATH (see Build), runs the tests and cleans up,
// and returns the exit code for os.Exit. A failed build fails the run.
func Main(m *testing.M, pkg, name string) int {
	cleanup, err := Build(pkg, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	return m.Run()
}

// RandHex returns n random bytes in hex, for names that parallel tests and
// reruns must not share.
func RandHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random bytes: %v", err)
	}
	return hex.EncodeToString(b)
}

// StartKafka starts an embedded Kafka-protocol broker on a free loopback
// port with devkafka's defaults (3 partitions per auto-created topic),
// closed when the test ends, and returns its address.
func StartKafka(t testing.TB) string {
	t.Helper()
	return StartKafkaWith(t, devkafka.Config{})
}

// StartKafkaWith is StartKafka with cfg (e.g. Partitions: 1 for a test
// that reads a topic's partition 0 only); an empty Addr means a free
// loopback port.
func StartKafkaWith(t testing.TB, cfg devkafka.Config) string {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := devkafka.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// WaitFor polls cond until it holds and fails the test when timeout passes
// first, with what and the state cond last described.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		<-tick.C
	}
}
