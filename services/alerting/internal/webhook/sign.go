package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256>" keyed by the
// receiver's secret, computed over "<timestamp>.<body>" where timestamp is
// TimestampHeader's value (unix seconds). Covering the timestamp lets a
// receiver refuse replays of an old, validly signed body.
const (
	SignatureHeader = "X-Canopy-Signature"
	TimestampHeader = "X-Canopy-Timestamp"
)

// signaturePrefix names the algorithm in the header value.
const signaturePrefix = "sha256="

// ErrBadSignature is returned by Verify for a missing, malformed, stale or
// wrong signature.
var ErrBadSignature = errors.New("webhook signature invalid")

// Sign returns the signature header value for body at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

// Verify checks a signature as a receiver would (tolerance on ts).
func Verify(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(strings.TrimSpace(tsHeader), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q: %v", ErrBadSignature, tsHeader, err)
	}
	if skew := now.Sub(time.Unix(sec, 0)).Abs(); skew > tolerance {
		return fmt.Errorf("%w: timestamp %d is %s from now, tolerance %s", ErrBadSignature, sec, skew, tolerance)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(sigHeader), signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: want %q prefix", ErrBadSignature, signaturePrefix)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: hex: %v", ErrBadSignature, err)
	}
	if !hmac.Equal(got, mac(secret, strconv.FormatInt(sec, 10), body)) {
		return fmt.Errorf("%w: mismatch", ErrBadSignature)
	}
	return nil
}

// mac is HMAC-SHA256 over "<ts>.<body>".
func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
