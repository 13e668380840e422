package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal([]byte("hunter2"), []byte("row-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("plaintext visible in sealed value")
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	tests := []struct {
		name    string
		box     *Box
		value   []byte
		aad     string
		wantErr bool
	}{
		{"same key and aad", box, sealed, "row-1", false},
		{"other row", box, sealed, "row-2", true},
		{"other key", other, sealed, "row-1", true},
		{"truncated", box, sealed[:10], "row-1", true},
		{"tampered", box, append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), "row-1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.box.Open(tt.value, []byte(tt.aad))
			if tt.wantErr {
				if !errors.Is(err, ErrDecrypt) {
					t.Fatalf("err = %v, want ErrDecrypt", err)
				}
				return
			}
			if err != nil || string(pt) != "hunter2" {
				t.Fatalf("open = %q, %v", pt, err)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
	if _, err := ParseKey(base64.StdEncoding.EncodeToString(make([]byte, 16))); err == nil {
		t.Fatal("short key accepted")
	}
	dir := t.TempDir()
	k1, err := LoadOrCreateKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey("", dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load differs: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "secrets.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	want := bytes.Repeat([]byte{1}, KeySize)
	k3, err := LoadOrCreateKey(base64.StdEncoding.EncodeToString(want), dir)
	if err != nil || !bytes.Equal(k3, want) {
		t.Fatalf("configured key: %v", err)
	}
	if p := Password(24); len(p) != 24 || p == Password(24) {
		t.Fatal("password not random")
	}
}

// sealLegacy seals the way format 1 did, before key ids.
func sealLegacy(t *testing.T, key, plaintext, aad []byte) []byte {
	t.Helper()
	aead, err := newAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	return aead.Seal(append([]byte{formatLegacy}, nonce...), nonce, plaintext, aad)
}

func TestRotation(t *testing.T) {
	keyA := bytes.Repeat([]byte{0xa}, KeySize)
	keyB := bytes.Repeat([]byte{0xb}, KeySize)
	keyC := bytes.Repeat([]byte{0xc}, KeySize)
	aad := []byte("row-1")
	onlyA, err := New(keyA)
	if err != nil {
		t.Fatal(err)
	}
	underA, err := onlyA.Seal([]byte("hunter2"), aad)
	if err != nil {
		t.Fatal(err)
	}
	legacyA := sealLegacy(t, keyA, []byte("hunter2"), aad)
	rotated, err := NewKeyring(keyB, keyA)
	if err != nil {
		t.Fatal(err)
	}
	onlyB, _ := New(keyB)
	underB, _ := rotated.Seal([]byte("hunter2"), aad)
	tests := []struct {
		name    string
		box     *Box
		value   []byte
		wantErr error
	}{
		{"A alone opens A", onlyA, underA, nil},
		{"A alone opens legacy A", onlyA, legacyA, nil},
		{"B with previous A opens A", rotated, underA, nil},
		{"B with previous A opens legacy A", rotated, legacyA, nil},
		{"B with previous A opens B", rotated, underB, nil},
		{"B alone opens B", onlyB, underB, nil},
		{"B alone: A is an unknown key", onlyB, underA, ErrUnknownKey},
		{"B alone: legacy A does not open", onlyB, legacyA, ErrDecrypt},
		{"unknown format", rotated, append([]byte{9}, underB[1:]...), ErrDecrypt},
		{"empty", rotated, nil, ErrDecrypt},
		{"key id only", rotated, underB[:1+KeyIDSize], ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.box.Open(tt.value, aad)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(pt) != "hunter2" {
				t.Fatalf("open = %q, %v", pt, err)
			}
		})
	}

	var uk *UnknownKeyError
	if _, err := onlyB.Open(underA, aad); !errors.As(err, &uk) || uk.ID != IDOf(keyA) || !strings.Contains(err.Error(), IDOf(keyA).String()) {
		t.Fatalf("unknown key error = %v, want one naming key id %s", err, IDOf(keyA))
	}
	if _, err := New(keyC); err != nil {
		t.Fatal(err)
	}
	if rotated.Current() != IDOf(keyB) || !rotated.IsCurrent(underB) || rotated.IsCurrent(underA) || rotated.IsCurrent(legacyA) {
		t.Fatal("IsCurrent/Current disagree with the sealing key")
	}
	for name, v := range map[string][]byte{"keyed": underA, "legacy": legacyA, "current": underB} {
		out, changed, err := rotated.Reseal(v, aad)
		if err != nil || changed != (name != "current") || !rotated.IsCurrent(out) {
			t.Fatalf("reseal %s: changed=%v current=%v err=%v", name, changed, rotated.IsCurrent(out), err)
		}
		if pt, err := onlyB.Open(out, aad); err != nil || string(pt) != "hunter2" {
			t.Fatalf("resealed %s does not open with B alone: %v", name, err)
		}
	}
	if _, _, err := onlyB.Reseal(underA, aad); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("reseal under unknown key: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	a := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, KeySize))
	keys, err := ParseKeys([]string{a, " ", ""})
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %d, %v", len(keys), err)
	}
	if _, err := ParseKeys([]string{a, "nope"}); err == nil || !strings.Contains(err.Error(), "key 1") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := NewKeyring(bytes.Repeat([]byte{1}, KeySize), make([]byte, 3)); err == nil || !strings.Contains(err.Error(), "previous key 1") {
		t.Fatalf("short previous key: %v", err)
	}
}
