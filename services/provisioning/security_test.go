package provisioning

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/statedir"

	"github.com/canopy-platform/canopy/libs/secrets"
)

// TestSecretsKeyRotationAndPrivateState runs a MySQL instance with a binding
// under key A, rotates to B (A previous) and waits for the background pass
// to move every credential to B, then runs on B alone and logs in with the
// binding. Throughout, the state dir (left world-readable by an "older
// run") holds nothing with group or other permissions.
func TestSecretsKeyRotationAndPrivateState(t *testing.T) {
	e := newEnv(t)
	keyA, keyB := bytes.Repeat([]byte{0xa}, secrets.KeySize), bytes.Repeat([]byte{0xb}, secrets.KeySize)
	s := newStack(t, e, func(c *Config) { c.SecretsKey = base64.StdEncoding.EncodeToString(keyA) })
	if err := os.Chmod(s.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.stateDir, "nodes", "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.stateDir, "nodes", "old", "leftover"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	assertPrivate := func(when string) {
		t.Helper()
		loose, err := statedir.Loose(s.stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(loose) > 0 {
			t.Fatalf("%s: group/other bits on %s", when, strings.Join(loose, ", "))
		}
	}

	s.start()
	c := s.as("acme")
	r := c.do("POST", "/api/v1/instances", map[string]any{"name": "rotating", "plan_id": planMySQLDev})
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.body)
	}
	id := r.json(t)["instance"].(map[string]any)["id"].(string)
	inst := c.waitState(id, readyWithin, "ready")
	br := c.do("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app"})
	if br.status != http.StatusCreated {
		t.Fatalf("bind: %d %s", br.status, br.body)
	}
	bid := br.json(t)["id"].(string)
	assertPrivate("running under key A")
	s.stopService()

	db := s.openDB(t)
	s.cfg.SecretsKey = base64.StdEncoding.EncodeToString(keyB)
	s.cfg.SecretsKeysPrevious = []string{base64.StdEncoding.EncodeToString(keyA)}
	s.start()
	eventually(t, time.Minute, "every credential re-sealed under key B", func() error {
		return underKey(db, secrets.IDOf(keyB))
	})
	s.stopService()

	s.cfg.SecretsKeysPrevious = nil
	s.start()
	// Reading the binding opens its sealed password; binding again has the
	// saga open the admin password and use it on the server.
	if b := c.do("GET", "/api/v1/instances/"+id+"/bindings/"+bid, nil); b.status != http.StatusOK {
		t.Fatalf("binding under key B alone: %d %s", b.status, b.body)
	}
	br = c.do("POST", "/api/v1/instances/"+id+"/bindings", map[string]any{"name": "app2"})
	if br.status != http.StatusCreated {
		t.Fatalf("bind under key B alone: %d %s", br.status, br.body)
	}
	creds := br.json(t)["credentials"].(map[string]any)
	conn := openMySQL(inst["endpoints"].(map[string]any)["primary"].(string), creds["username"].(string), creds["password"].(string), "")
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.PingContext(ctx); err != nil {
		t.Fatalf("log in with a binding made under key B alone: %v", err)
	}
	assertPrivate("after rotation")
}

// openDB opens the stack's provisioning database.
func (s *stack) openDB(t *testing.T) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(s.cfg.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = s.cfg.Database
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// underKey checks every sealed value in the database names key id.
func underKey(db *sql.DB, id secrets.KeyID) error {
	for _, q := range []string{"SELECT id, accounts FROM instances", "SELECT id, secret FROM bindings"} {
		rows, err := db.Query(q)
		if err != nil {
			return err
		}
		for rows.Next() {
			var rid string
			var v []byte
			if err := rows.Scan(&rid, &v); err != nil {
				rows.Close()
				return err
			}
			if len(v) < 1+secrets.KeyIDSize || !bytes.Equal(v[1:1+secrets.KeyIDSize], id[:]) {
				rows.Close()
				return fmt.Errorf("%s %s not under key %s", strings.Fields(q)[3], rid, id)
			}
		}
		rows.Close()
	}
	return nil
}
