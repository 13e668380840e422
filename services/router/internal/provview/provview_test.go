package provview_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/canopy-platform/canopy/services/router/internal/provview"
	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// TestTableMapsTheView maps provisioning's wire form, verifiers included;
// a verifier that is not a SHA-256 is dropped, so nobody logs in with it.
func TestTableMapsTheView(t *testing.T) {
	sum := sha256.Sum256([]byte("pw"))
	wire := `{"instance_id":"i-1","tenant_id":"acme","name":"cache","engine":"redis","state":"ready","failover_token":4,
	  "endpoints":{"rw_port":16000,"ro_port":16001},
	  "nodes":[{"id":"n-0","role":"fenced","address":"127.0.0.1:1","state":"running"},{"id":"n-1","role":"primary","address":"127.0.0.1:2","state":"running"}],
	  "bindings":[{"username":"b_1","password_sha256":"` + hex.EncodeToString(sum[:]) + `"},{"username":"b_2","password_sha256":"zz"}]}`
	var in provview.Instance
	if err := json.Unmarshal([]byte(wire), &in); err != nil {
		t.Fatal(err)
	}
	got := in.Table()
	if got.ID != "i-1" || got.Tenant != "acme" || got.Name != "cache" || got.Engine != table.Redis || got.RWPort != 16000 ||
		got.ROPort != 16001 || got.FailoverToken != 4 || len(got.Nodes) != 2 || got.Nodes[0].Role != table.Fenced {
		t.Fatalf("mapped %+v", got)
	}
	if len(got.Bindings) != 1 || got.Bindings[0].Username != "b_1" || got.Bindings[0].PasswordSHA256 != sum {
		t.Fatalf("bindings %+v", got.Bindings)
	}
}
