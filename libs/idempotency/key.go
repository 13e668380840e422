// Package idempotency is the one handling of the Idempotency-Key header of
// creating requests: the key's rules, the request fingerprint a key is bound
// to, the verdict on a repeat (replay the stored answer, 422 for a reused key
// with another request, 409 while the first still runs), the replayed answer
// and the problems. Middleware applies all of it around a handler over a
// small Store port each service implements; a service that stores the
// answer in the same transaction as its change uses the pieces directly.
// It owns no SQL and no table.
package idempotency

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Header is the request header carrying the key.
const Header = "Idempotency-Key"

// ReplayedHeader marks an answer replayed from an earlier request.
const ReplayedHeader = "Idempotent-Replayed"

// MaxKeyLen bounds the key (api/openapi/base.yaml IdempotencyKey).
const MaxKeyLen = 255

// ErrInvalidKey: the header is not 1-MaxKeyLen printable ASCII characters (400).
var ErrInvalidKey = errors.New("invalid Idempotency-Key")

// ErrReused: the key was used before with another request (422).
var ErrReused = errors.New("Idempotency-Key reused with a different request")

// ErrInProgress: the first request with the key has not finished (409).
var ErrInProgress = errors.New("request with this Idempotency-Key still in progress")

// Key returns the request's key, "" when it has none, or ErrInvalidKey.
func Key(r *http.Request) (string, error) {
	k := r.Header.Get(Header)
	if k == "" {
		return "", nil
	}
	if !ValidKey(k) {
		return "", ErrInvalidKey
	}
	return k, nil
}

// ValidKey reports whether k is 1-MaxKeyLen printable ASCII characters.
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// Hash is a request fingerprint.
type Hash [sha256.Size]byte

// HashRequest fingerprints method, path and body: a key is bound to all
// three (the principal is the Store's scope).
func HashRequest(method, path string, body []byte) Hash {
	h := sha256.New()
	h.Write([]byte(method + " " + path + "\n"))
	h.Write(body)
	var out Hash
	h.Sum(out[:0])
	return out
}

// HashJSONBody fingerprints a JSON body with its whitespace compacted, as
// hex, for services whose scope already names the operation.
func HashJSONBody(body []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

// Scope is the namespace of keys for operation op called by p: the same
// key of another caller, or of the same caller on another operation, is
// another key.
func Scope(op string, p tenancy.Principal) string {
	sum := sha256.Sum256([]byte(string(p.Tenant) + "|" + p.Subject))
	return op + ":" + hex.EncodeToString(sum[:16])
}

// Verdict decides on a repeat: nil (replay the stored answer) when the
// fingerprints match and the first request finished, ErrReused for another
// request, ErrInProgress while the first runs.
func Verdict(stored, got []byte, finished bool) error {
	if !hmac.Equal(stored, got) {
		return ErrReused
	}
	if !finished {
		return ErrInProgress
	}
	return nil
}

// Problem is the answer for an error of this package: 400, 422 or 409 with
// Retry-After in its headers (see WriteProblem); nil for any other error.
func Problem(err error) *httpx.Problem {
	switch {
	case errors.Is(err, ErrInvalidKey):
		return httpx.BadRequest("invalid Idempotency-Key header",
			httpx.FieldError{Field: Header, Reason: fmt.Sprintf("must be 1-%d printable ASCII characters", MaxKeyLen)})
	case errors.Is(err, ErrReused):
		return httpx.Unprocessable("this Idempotency-Key was already used with a different request",
			httpx.FieldError{Field: Header, Reason: "reused with a different method, path or body"})
	case errors.Is(err, ErrInProgress):
		return httpx.NewProblem(http.StatusConflict, "a request with this Idempotency-Key is still being processed")
	}
	return nil
}

// WriteProblem answers err (an error of this package) with its problem;
// a 409 tells the client to retry in a second.
func WriteProblem(w http.ResponseWriter, r *http.Request, err error) {
	p := Problem(err)
	if p == nil {
		httpx.WriteError(w, r, err)
		return
	}
	if errors.Is(err, ErrInProgress) {
		w.Header().Set("Retry-After", "1")
	}
	httpx.WriteProblem(w, r, p)
}

// WriteReplay answers with a stored answer, marked as replayed.
func WriteReplay(w http.ResponseWriter, status int, contentType string, body []byte) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.Header().Set(ReplayedHeader, "true")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
