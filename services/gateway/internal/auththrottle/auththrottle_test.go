package auththrottle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func newThrottle(t *testing.T, cfg Config) (*Throttle, redis.UniversalClient) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg.Prefix = "test:authfail:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		if keys, err := rdb.Keys(ctx, cfg.Prefix+"*").Result(); err == nil && len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		_ = rdb.Close()
	})
	th, err := New(rdb, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return th, rdb
}

func TestThrottleAfterFailures(t *testing.T) {
	a, rdb := newThrottle(t, Config{Failures: 3, Window: time.Minute})
	ctx := context.Background()
	for i := range 2 {
		if err := a.Fail(ctx, "192.0.2.1"); err != nil {
			t.Fatalf("failure %d: %v", i+1, err)
		}
		if err := a.Check(ctx, "192.0.2.1"); err != nil {
			t.Fatalf("check after %d failures: %v", i+1, err)
		}
	}
	err := a.Fail(ctx, "192.0.2.1")
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) || te.RetryAfter <= 0 || te.RetryAfter > time.Minute {
		t.Fatalf("third failure: %v", err)
	}
	if d, ok := a.Blocked("192.0.2.1"); !ok || d <= 0 {
		t.Fatal("a throttled address is remembered in memory")
	}
	if err := a.Check(ctx, "192.0.2.2"); err != nil {
		t.Fatalf("another address is unaffected: %v", err)
	}
	// A second replica, which has seen none of the failures, learns from Redis.
	b, err := New(rdb, a.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Blocked("192.0.2.1"); ok {
		t.Fatal("the second replica cannot know before asking")
	}
	if err := b.Check(ctx, "192.0.2.1"); !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("second replica's check: %v", err)
	}
	if _, ok := b.Blocked("192.0.2.1"); !ok {
		t.Fatal("the second replica remembers what Redis said")
	}
}

func TestThrottleWindowEnds(t *testing.T) {
	th, _ := newThrottle(t, Config{Failures: 1, Window: 200 * time.Millisecond})
	ctx := context.Background()
	if err := th.Fail(ctx, "198.51.100.7"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("first failure with a limit of 1: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for th.Check(ctx, "198.51.100.7") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the address is still throttled long after its window")
		}
		time.Sleep(20 * time.Millisecond) // polling for the window's end, with a deadline
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5555":                 "192.0.2.1",
		"192.0.2.1":                      "192.0.2.1",
		"[::ffff:192.0.2.1]:80":          "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:4:5:6]:1234": "2001:db8:1:2::/64",
		"not an address":                 "not an address",
	} {
		if got := ClientAddr(in); got != want {
			t.Errorf("ClientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolverTrustsOnlyConfiguredProxies(t *testing.T) {
	r, err := NewResolver([]string{"10.0.0.0/8", "2001:db8:ffff::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct client", "192.0.2.1:5555", nil, "192.0.2.1"},
		{"direct client's X-Forwarded-For is ignored", "192.0.2.1:5555", []string{"198.51.100.1"}, "192.0.2.1"},
		{"through the ingress", "10.1.2.3:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left entries are skipped", "10.1.2.3:80", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", "10.1.2.3:80", []string{"198.51.100.1", "10.9.9.9"}, "198.51.100.1"},
		{"trusted IPv6 proxy", "[2001:db8:ffff::1]:443", []string{"2001:db8:1:2::99"}, "2001:db8:1:2::/64"},
		{"garbage ends the walk", "10.1.2.3:80", []string{"198.51.100.1, not-an-ip"}, "10.1.2.3"},
		{"only trusted hops", "10.1.2.3:80", []string{"10.4.4.4"}, "10.4.4.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Addr(tt.remote, tt.xff); got != tt.want {
				t.Fatalf("Addr(%q, %q) = %q, want %q", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
	if _, err := NewResolver([]string{"not a cidr"}); err == nil {
		t.Fatal("a bad trusted proxy was accepted")
	}
}
