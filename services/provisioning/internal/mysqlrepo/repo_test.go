package mysqlrepo

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/repotest"
)

func newRepo(t *testing.T) (*Repo, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db := storetest.NewDB(t, "provrepo")
	box, _ := secrets.New(bytes.Repeat([]byte{3}, secrets.KeySize))
	r, err := New(db, box)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return r, ctx
}

func order(id, tenant, name string) (*instance.Instance, instance.Operation) {
	return repotest.Order(id, tenant, name)
}

// TestConformance runs the repository contract's suite against MariaDB.
func TestConformance(t *testing.T) {
	repotest.Run(t, func(t *testing.T) repotest.Subject {
		r, ctx := newRepo(t)
		return repotest.Subject{Repo: r, OutboxLen: func(t *testing.T) int {
			t.Helper()
			var n int
			if err := r.db.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}}
	})
}

// TestCredentialsSealedAtRest: instance accounts and binding passwords are
// stored sealed, and read back in clear.
func TestCredentialsSealedAtRest(t *testing.T) {
	r, ctx := newRepo(t)
	in, op := order("i1", "acme", "db")
	if err := r.Create(ctx, CreateRequest{Instance: in, Op: op}); err != nil {
		t.Fatal(err)
	}
	b := instance.Binding{ID: "b1", InstanceID: "i1", Tenant: "acme", Name: "app", Credentials: instance.Credentials{Username: "u", Password: "binding-pass"}, CreatedAt: time.Now()}
	if _, err := r.CreateBinding(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ query, secret string }{
		{"SELECT accounts FROM instances WHERE id = 'i1'", "very-secret-admin"},
		{"SELECT secret FROM bindings WHERE id = 'b1'", "binding-pass"},
	} {
		var raw []byte
		if err := r.db.SQL().QueryRowContext(ctx, c.query).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(c.secret)) {
			t.Fatalf("%s: stored in clear", c.query)
		}
	}
	got, err := r.Get(ctx, "acme", "i1")
	if err != nil || got.Accounts.Admin.Password != "very-secret-admin" {
		t.Fatalf("get: %v %+v", err, got)
	}
	gb, err := r.Binding(ctx, "acme", "i1", "b1")
	if err != nil || gb.Credentials.Password != "binding-pass" {
		t.Fatalf("binding: %v %+v", err, gb)
	}
}

// TestCDCAccount: the cdc account is stored with the others, and an
// instance sealed before the account existed loads with it empty.
func TestCDCAccount(t *testing.T) {
	r, ctx := newRepo(t)
	in, op := order("i1", "acme", "db")
	in.Accounts.CDC = instance.Credentials{Username: "canopy_cdc", Password: "cdc-secret-password"}
	if err := r.Create(ctx, CreateRequest{Instance: in, Op: op}); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, "acme", "i1")
	if err != nil || got.Accounts.CDC != in.Accounts.CDC {
		t.Fatalf("get: %v %+v", err, got)
	}
	old, op2 := order("i2", "acme", "old")
	if err := r.Create(ctx, CreateRequest{Instance: old, Op: op2}); err != nil {
		t.Fatal(err)
	}
	// What the repository wrote before the cdc field existed.
	sealed, err := r.box.Seal([]byte(`{"admin":{"username":"a","password":"very-secret-admin"},"monitor":{"username":"m","password":"p"},"replication":{"username":"r","password":"p"}}`), []byte("instance:i2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.db.SQL().ExecContext(ctx, "UPDATE instances SET accounts = ? WHERE id = 'i2'", sealed); err != nil {
		t.Fatal(err)
	}
	got, err = r.Get(ctx, "acme", "i2")
	if err != nil || got.Accounts.CDC != (instance.Credentials{}) || got.Accounts.Admin.Password != "very-secret-admin" {
		t.Fatalf("get pre-cdc instance: %v %+v", err, got)
	}
}

// TestConcurrentCreatesOfANewTenant: the first orders of a tenant race to
// create its lock row (INSERT IGNORE, then SELECT ... FOR UPDATE), where
// InnoDB picks deadlock victims; every create must still succeed (the
// victim's transaction runs again), not answer a 500 (seen in the split-mode
// chaos scenario: "lock tenant: Error 1213").
func TestConcurrentCreatesOfANewTenant(t *testing.T) {
	r, ctx := newRepo(t)
	const rounds, perRound = 5, 8
	for round := range rounds {
		tenant := fmt.Sprintf("t-race-%d", round)
		errs := make(chan error, perRound)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range perRound {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in, op := order(fmt.Sprintf("i-%d-%d", round, i), tenant, fmt.Sprintf("db-%d", i))
				<-start
				errs <- r.Create(ctx, CreateRequest{Instance: in, Op: op})
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
	}
}
