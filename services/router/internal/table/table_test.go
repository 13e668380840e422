package table_test

import (
	"crypto/sha256"
	"testing"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

func instance() table.Instance {
	return table.Instance{ID: "i-1", Tenant: "acme", Name: "cache", Engine: table.Redis, RWPort: 16000, ROPort: 16001,
		Nodes: []table.Node{{ID: "n-0", Address: "127.0.0.1:1", Role: table.Primary}, {ID: "n-1", Address: "127.0.0.1:2", Role: table.Replica},
			{ID: "n-2", Address: "127.0.0.1:3", Role: table.Replica}},
		Bindings: []table.Binding{{Username: "b_1", PasswordSHA256: sha256.Sum256([]byte("secret"))}}}
}

func primary(t *testing.T, tb *table.Table) string {
	t.Helper()
	v, ok := tb.Get("i-1")
	if !ok {
		t.Fatal("instance not in the table")
	}
	p, ok := v.Primary()
	if !ok {
		return ""
	}
	return p.ID
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestPromotedMovesThePrimaryAndAnnounces(t *testing.T) {
	tb := table.New()
	tb.Apply(instance())
	var got []table.Change
	cancel := tb.Subscribe(func(c table.Change) { got = append(got, c) })
	defer cancel()
	_, _, ch := tb.Watch("i-1")

	tb.Switching("i-1", 5)
	if v, _ := tb.Get("i-1"); !v.Switching {
		t.Fatal("a started recovery must hold new connections")
	}
	if !closed(ch) {
		t.Fatal("watchers must wake at a change")
	}
	tb.Promoted("i-1", 5, map[string]string{"n-0": "fenced", "n-1": "primary", "n-2": "replica"})
	v, _ := tb.Get("i-1")
	if v.Switching || primary(t, tb) != "n-1" || v.FailoverToken != 5 {
		t.Fatalf("after promotion: switching %v primary %q token %d", v.Switching, primary(t, tb), v.FailoverToken)
	}
	if len(v.Replicas()) != 1 || v.Replicas()[0].ID != "n-2" {
		t.Fatalf("replicas %+v: the fenced node must not serve reads", v.Replicas())
	}
	if len(got) != 1 || got[0] != (table.Change{InstanceID: "i-1", Tenant: "acme", Name: "cache", Old: "127.0.0.1:1", New: "127.0.0.1:2"}) {
		t.Fatalf("announced %+v", got)
	}

	// A redelivered or older outcome changes nothing.
	tb.Promoted("i-1", 4, map[string]string{"n-0": "primary", "n-1": "replica"})
	if primary(t, tb) != "n-1" || len(got) != 1 {
		t.Fatal("an older recovery must be ignored")
	}
}

func TestStaleProvisioningStateKeepsNewerRoles(t *testing.T) {
	tb := table.New()
	tb.Apply(instance())
	tb.Promoted("i-1", 7, map[string]string{"n-0": "fenced", "n-1": "primary", "n-2": "replica"})

	stale := instance() // written before the failover: token 0, n-0 primary
	stale.Bindings = append(stale.Bindings, table.Binding{Username: "b_2"})
	tb.Apply(stale)
	v, _ := tb.Get("i-1")
	if primary(t, tb) != "n-1" || v.FailoverToken != 7 {
		t.Fatalf("stale state moved the primary back to %q", primary(t, tb))
	}
	if len(v.Bindings) != 2 {
		t.Fatal("the rest of a stale state is still taken")
	}

	fresh := instance()
	fresh.FailoverToken = 9
	tb.Apply(fresh) // a later switch back, as provisioning recorded it
	if primary(t, tb) != "n-0" {
		t.Fatalf("newer state not taken: primary %q", primary(t, tb))
	}
}

func TestFailedRecoveryReleasesWaiters(t *testing.T) {
	tb := table.New()
	tb.Apply(instance())
	tb.Switching("i-1", 3)
	tb.RecoveryEnded("i-1", 2) // an older recovery's failure
	if v, _ := tb.Get("i-1"); !v.Switching {
		t.Fatal("an older failure must not end the current recovery")
	}
	tb.RecoveryEnded("i-1", 3)
	if v, _ := tb.Get("i-1"); v.Switching || primary(t, tb) != "n-0" {
		t.Fatal("a failed recovery keeps the roles and ends the window")
	}
}

func TestHealthAndRemoval(t *testing.T) {
	tb := table.New()
	tb.Apply(instance())
	tb.NodeHealth("i-1", "n-1", true)
	v, _ := tb.Get("i-1")
	if len(v.Replicas()) != 1 || v.Replicas()[0].ID != "n-2" {
		t.Fatalf("a down replica still serves: %+v", v.Replicas())
	}
	tb.Apply(instance()) // provisioning's state does not know the checker's verdict
	if v, _ := tb.Get("i-1"); len(v.Replicas()) != 1 {
		t.Fatal("a resync must not revive a node the checker declared down")
	}
	tb.NodeHealth("i-1", "n-1", false)
	if v, _ := tb.Get("i-1"); len(v.Replicas()) != 2 {
		t.Fatal("a node back up serves again")
	}
	_, _, ch := tb.Watch("i-1")
	if n := tb.Retain(map[string]bool{"other": true}); n != 1 {
		t.Fatalf("retain forgot %d", n)
	}
	if _, ok := tb.Get("i-1"); ok || !closed(ch) {
		t.Fatal("a forgotten instance must be gone and its watchers woken")
	}
}

func TestAuthenticateAndNames(t *testing.T) {
	tb := table.New()
	tb.Apply(instance())
	other := instance()
	other.ID, other.Tenant, other.Bindings = "i-2", "globex", []table.Binding{{Username: "b_2", PasswordSHA256: sha256.Sum256([]byte("x"))}}
	tb.Apply(other)
	if tenant, ok := tb.Authenticate(table.Redis, "b_1", "secret"); !ok || tenant != "acme" {
		t.Fatalf("authenticate: %q %v", tenant, ok)
	}
	for _, c := range [][2]string{{"b_1", "wrong"}, {"b_1", ""}, {"nobody", "secret"}} {
		if _, ok := tb.Authenticate(table.Redis, c[0], c[1]); ok {
			t.Fatalf("%v authenticated", c)
		}
	}
	if _, ok := tb.Authenticate(table.MySQL, "b_1", "secret"); ok {
		t.Fatal("a Redis binding must not authenticate for MySQL")
	}
	if v, ok := tb.ByName("globex", "cache"); !ok || v.ID != "i-2" {
		t.Fatal("names are per tenant")
	}
	if got := tb.Tenant("acme", table.Redis); len(got) != 1 || got[0].ID != "i-1" {
		t.Fatalf("tenant listing %+v", got)
	}
}
