package mysqlrepo

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/port"
)

// TestLeaseAcquireRenewRelease: a free lease is taken with token 1; another
// owner is refused while it is held (told for how long); renewing keeps it,
// releasing frees it at once with the next token for the next owner.
func TestLeaseAcquireRenewRelease(t *testing.T) {
	r, ctx := newRepo(t)
	a, err := r.AcquireLease(ctx, "i1", "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if a.Token != 1 || a.Previous != "" || a.Owner != "A" {
		t.Fatalf("first lease: %+v", a)
	}
	_, err = r.AcquireLease(ctx, "i1", "B", time.Minute)
	var held *port.LeaseHeldError
	if !errors.As(err, &held) || held.Owner != "A" || held.Remaining <= 50*time.Second || held.Remaining > time.Minute {
		t.Fatalf("B while A holds it: %v (%+v)", err, held)
	}
	if err := r.RenewLease(ctx, a, time.Minute); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if err := r.ReleaseLease(ctx, a); err != nil {
		t.Fatal(err)
	}
	b, err := r.AcquireLease(ctx, "i1", "B", time.Minute)
	if err != nil {
		t.Fatalf("B after A released: %v", err)
	}
	if b.Token != 2 || b.Previous != "A" {
		t.Fatalf("second lease: %+v", b)
	}
	if err := r.RenewLease(ctx, a, time.Minute); !errors.Is(err, port.ErrLeaseLost) {
		t.Fatalf("A renews after B took it: %v, want ErrLeaseLost", err)
	}
	// A stale release leaves B's lease alone.
	if err := r.ReleaseLease(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AcquireLease(ctx, "i1", "C", time.Minute); !errors.As(err, &held) || held.Owner != "B" {
		t.Fatalf("C after A's stale release: %v", err)
	}
}

// TestLeaseTakeoverAfterExpiry: a lease its owner stops renewing (a dead
// replica) is taken by another owner once its TTL ran out, not before, and
// the dead owner's renewal then fails.
func TestLeaseTakeoverAfterExpiry(t *testing.T) {
	r, ctx := newRepo(t)
	const ttl = 400 * time.Millisecond
	a, err := r.AcquireLease(ctx, "i1", "A", ttl)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var b port.Lease
	deadline := began.Add(10 * time.Second)
	for {
		b, err = r.AcquireLease(ctx, "i1", "B", ttl)
		if err == nil {
			break
		}
		var held *port.LeaseHeldError
		if !errors.As(err, &held) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not taken over within 10s: %v", err)
		}
		time.Sleep(min(held.Remaining, 50*time.Millisecond))
	}
	if took := time.Since(began); took < ttl-50*time.Millisecond {
		t.Fatalf("taken over after %s, before the TTL %s ran out", took, ttl)
	}
	if b.Token != a.Token+1 || b.Previous != "A" {
		t.Fatalf("takeover lease: %+v", b)
	}
	if err := r.RenewLease(ctx, a, ttl); !errors.Is(err, port.ErrLeaseLost) {
		t.Fatalf("dead owner renews: %v, want ErrLeaseLost", err)
	}
}

// TestLeaseFencesStaleWrites: the saga's writes carry their lease's token;
// once another owner took the lease, the former holder's write is refused
// and the instance row is unchanged, while the new holder's goes through.
// Writes without a token (the HTTP edge, the consumers) are not fenced.
func TestLeaseFencesStaleWrites(t *testing.T) {
	r, ctx := newRepo(t)
	in, op := order("i1", "acme", "db")
	if err := r.Create(ctx, CreateRequest{Instance: in, Op: op}); err != nil {
		t.Fatal(err)
	}
	a, err := r.AcquireLease(ctx, "i1", "A", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	setReason := func(reason string) func(c *Change) error {
		return func(c *Change) error { c.Instance.Reason = reason; return nil }
	}
	if _, err := r.Update(port.WithFence(ctx, "i1", a.Token), "i1", setReason("by A")); err != nil {
		t.Fatalf("holder's write: %v", err)
	}
	var b port.Lease
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b, err = r.AcquireLease(ctx, "i1", "B", time.Minute); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := r.Update(port.WithFence(ctx, "i1", a.Token), "i1", setReason("stale A")); !errors.Is(err, port.ErrFenced) {
		t.Fatalf("stale write: %v, want ErrFenced", err)
	}
	got, err := r.GetAnyTenant(ctx, "i1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Reason != "by A" {
		t.Fatalf("reason %q after the refused write", got.Reason)
	}
	if _, err := r.Update(port.WithFence(ctx, "i1", b.Token), "i1", setReason("by B")); err != nil {
		t.Fatalf("new holder's write: %v", err)
	}
	if _, err := r.Update(ctx, "i1", setReason("edge")); err != nil {
		t.Fatalf("unfenced write: %v", err)
	}
	// A fence for another instance does not apply.
	if _, err := r.Update(port.WithFence(ctx, "other", 1), "i1", setReason("edge 2")); err != nil {
		t.Fatalf("write fenced for another instance: %v", err)
	}
}

// TestLeaseOneWinner: owners racing for a lease never taken get it once.
func TestLeaseOneWinner(t *testing.T) {
	r, ctx := newRepo(t)
	const racers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []port.Lease
	)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := r.AcquireLease(ctx, "i1", string(rune('A'+i)), time.Minute)
			var held *port.LeaseHeldError
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, l)
				mu.Unlock()
			case !errors.As(err, &held):
				t.Errorf("racer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 || winners[0].Token != 1 {
		t.Fatalf("winners: %+v", winners)
	}
}
