package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"
)

// receiverCheck is what an on-call team's receiver does, with nothing but
// the standard library and the documented scheme.
func receiverCheck(secret, ts, sig string, body []byte) bool {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(h.Sum(nil))
	return hmac.Equal([]byte(sig), []byte(want))
}

func TestSignVerifiableByReceiver(t *testing.T) {
	body := []byte(`{"version":"4","status":"firing"}`)
	ts := time.Unix(1_780_000_000, 0)
	sig := Sign([]byte("s3cret"), ts, body)
	if !receiverCheck("s3cret", "1780000000", sig, body) {
		t.Fatalf("a receiver cannot verify %q", sig)
	}
	if receiverCheck("other", "1780000000", sig, body) {
		t.Fatal("verifies with the wrong secret")
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"alerts":[]}`)
	ts := time.Unix(1_780_000_000, 0)
	tsh := strconv.FormatInt(ts.Unix(), 10)
	sig := Sign(secret, ts, body)
	tests := []struct {
		name    string
		secret  []byte
		ts, sig string
		body    []byte
		now     time.Time
		ok      bool
	}{
		{"valid", secret, tsh, sig, body, ts.Add(10 * time.Second), true},
		{"valid, clock behind", secret, tsh, sig, body, ts.Add(-10 * time.Second), true},
		{"tampered body", secret, tsh, sig, []byte(`{"alerts":[1]}`), ts, false},
		{"wrong secret", []byte("nope"), tsh, sig, body, ts, false},
		{"stale", secret, tsh, sig, body, ts.Add(6 * time.Minute), false},
		{"timestamp moved", secret, strconv.FormatInt(ts.Unix()+1, 10), sig, body, ts, false},
		{"no prefix", secret, tsh, sig[len("sha256="):], body, ts, false},
		{"not hex", secret, tsh, "sha256=zz", body, ts, false},
		{"no timestamp", secret, "", sig, body, ts, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.ts, tt.sig, tt.body, tt.now, 5*time.Minute)
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}
