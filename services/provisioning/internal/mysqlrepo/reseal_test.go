package mysqlrepo

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/libs/secrets"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// sealLegacy seals the way rows were sealed before key ids (format 1:
// 0x01 | nonce | ciphertext).
func sealLegacy(t *testing.T, key, plaintext, aad []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	return aead.Seal(append([]byte{1}, nonce...), nonce, plaintext, aad)
}

func repoWith(t *testing.T, db *store.DB, current []byte, previous ...[]byte) *Repo {
	t.Helper()
	box, err := secrets.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(db, box)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readAll reads back every credential the test wrote.
func readAll(ctx context.Context, r *Repo) error {
	for _, id := range []string{"i1", "i2"} {
		in, err := r.Get(ctx, "acme", id)
		if err != nil {
			return err
		}
		if in.Accounts.Admin.Password != "very-secret-admin" {
			return errors.New("instance " + id + ": wrong admin password")
		}
	}
	b, err := r.Binding(ctx, "acme", "i1", "b1")
	if err != nil {
		return err
	}
	if b.Credentials.Password != "binding-secret" {
		return errors.New("binding b1: wrong password")
	}
	return nil
}

func TestRotateSecretsKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db := storetest.NewDB(t, "provreseal")
	keyA := bytes.Repeat([]byte{0xa}, secrets.KeySize)
	keyB := bytes.Repeat([]byte{0xb}, secrets.KeySize)
	keyC := bytes.Repeat([]byte{0xc}, secrets.KeySize)

	// Rows written under key A: two instances (i2 in the format from before
	// key ids) and a binding.
	underA := repoWith(t, db, keyA)
	if err := underA.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"i1", "i2"} {
		in, op := order(id, "acme", "db-"+id)
		if err := underA.Create(ctx, CreateRequest{Instance: in, Op: op}); err != nil {
			t.Fatal(err)
		}
	}
	legacy := sealLegacy(t, keyA, []byte(`{"admin":{"username":"a","password":"very-secret-admin"}}`), []byte("instance:i2"))
	if _, err := db.SQL().ExecContext(ctx, "UPDATE instances SET accounts = ? WHERE id = 'i2'", legacy); err != nil {
		t.Fatal(err)
	}
	b := instance.Binding{ID: "b1", InstanceID: "i1", Tenant: "acme", Name: "app",
		Credentials: instance.Credentials{Username: "u", Password: "binding-secret"}, CreatedAt: time.Now().UTC()}
	if _, err := underA.CreateBinding(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	if err := readAll(ctx, underA); err != nil {
		t.Fatalf("read under A: %v", err)
	}

	// Rotate: B current, A previous. Everything still reads; nothing moved yet.
	rotated := repoWith(t, db, keyB, keyA)
	if err := readAll(ctx, rotated); err != nil {
		t.Fatalf("read under B with A previous: %v", err)
	}
	if n, err := rotated.Unresealed(ctx); err != nil || n != 3 {
		t.Fatalf("unresealed before = %d, %v; want 3", n, err)
	}

	// B alone cannot read A's rows yet, and says why.
	onlyB := repoWith(t, db, keyB)
	if _, err := onlyB.Get(ctx, "acme", "i1"); !errors.Is(err, secrets.ErrUnknownKey) || !strings.Contains(err.Error(), secrets.IDOf(keyA).String()) {
		t.Fatalf("read A's row with B alone: %v, want unknown key %s", err, secrets.IDOf(keyA))
	}

	// Re-seal (batch 1 to walk several pages) moves every row to B.
	res, err := rotated.Reseal(ctx, 1)
	if err != nil || res.Resealed != 3 || res.Remaining != 0 {
		t.Fatalf("reseal = %+v, %v; want 3 resealed, 0 remaining", res, err)
	}
	if res, err := rotated.Reseal(ctx, 1); err != nil || res.Resealed != 0 {
		t.Fatalf("second reseal = %+v, %v; want nothing to do", res, err)
	}
	for _, q := range []string{"SELECT accounts FROM instances", "SELECT secret FROM bindings"} {
		rows, err := db.SQL().QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(v, onlyB.box.CurrentPrefix()) {
				t.Fatalf("%s: value not under key B after reseal", q)
			}
		}
		rows.Close()
	}

	// A removed: everything still decrypts.
	if err := readAll(ctx, onlyB); err != nil {
		t.Fatalf("read under B alone after reseal: %v", err)
	}

	// A key the rows were never sealed with: a clear error, and re-sealing
	// reports the rows it cannot open without touching them.
	onlyC := repoWith(t, db, keyC)
	if _, err := onlyC.Get(ctx, "acme", "i1"); !errors.Is(err, secrets.ErrUnknownKey) || !strings.Contains(err.Error(), secrets.IDOf(keyB).String()) {
		t.Fatalf("read with unknown key: %v", err)
	}
	res, err = onlyC.Reseal(ctx, 10)
	if !errors.Is(err, secrets.ErrUnknownKey) || res.Resealed != 0 || res.Remaining != 3 {
		t.Fatalf("reseal with unknown key = %+v, %v", res, err)
	}
	if err := readAll(ctx, onlyB); err != nil {
		t.Fatalf("rows changed by a failed reseal: %v", err)
	}
}
