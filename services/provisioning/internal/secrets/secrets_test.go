package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
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
