package httpapi

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/uuid"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
)

// IdempotencyHeader is the request header naming an idempotent create.
const IdempotencyHeader = "Idempotency-Key"

// ReplayedHeader marks a response replayed from an earlier request.
const ReplayedHeader = "Idempotent-Replayed"

const maxIdempotencyKey = 255

// idempotency is an Idempotency-Key request in progress.
type idempotency struct {
	scope, key, hash string
}

// response returns the record to store with the created resource.
func (i *idempotency) response(status int, body []byte) *mysqlrepo.IdempotentResponse {
	if i == nil {
		return nil
	}
	return &mysqlrepo.IdempotentResponse{Scope: i.scope, Key: i.key, RequestHash: i.hash, Status: status, Body: body}
}

// readBody reads the whole request body (bounded by the router's limit) and
// puts it back so httpx.DecodeJSON can decode it strictly.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, httpx.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxErr.Limit))
		}
		return nil, httpx.BadRequest("request body could not be read")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// startIdempotent handles the Idempotency-Key of a create: without one it
// returns nil; with a key already used it replays the stored response (same
// body) or answers 422 (another body) and reports done.
func (h *Handler) startIdempotent(w http.ResponseWriter, r *http.Request, op string, body []byte) (idem *idempotency, done bool) {
	key := r.Header.Get(IdempotencyHeader)
	if key == "" {
		return nil, false
	}
	if len(key) > maxIdempotencyKey || !printableASCII(key) {
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid Idempotency-Key",
			httpx.FieldError{Field: IdempotencyHeader, Reason: fmt.Sprintf("must be 1 to %d printable ASCII characters", maxIdempotencyKey)}))
		return nil, true
	}
	p, _ := tenancy.PrincipalFrom(r.Context())
	subject := sha256.Sum256([]byte(string(p.Tenant) + "|" + p.Subject))
	idem = &idempotency{scope: op + ":" + hex.EncodeToString(subject[:16]), key: key, hash: bodyHash(body)}
	if h.replay(w, r, idem) {
		return nil, true
	}
	return idem, false
}

// replay answers from a stored response under idem's key, if there is one.
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, idem *idempotency) bool {
	stored, ok, err := h.repo.LookupIdempotent(r.Context(), idem.scope, idem.key)
	if err != nil {
		h.writeInternal(w, r, err)
		return true
	}
	if !ok {
		return false
	}
	if stored.RequestHash != idem.hash {
		httpx.WriteProblem(w, r, httpx.Unprocessable("this Idempotency-Key was already used with a different request body",
			httpx.FieldError{Field: IdempotencyHeader, Reason: "reused with a different request body"}))
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(ReplayedHeader, "true")
	w.WriteHeader(stored.Status)
	_, _ = w.Write(stored.Body)
	return true
}

// bodyHash hashes the compacted body, so whitespace does not matter.
func bodyHash(body []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func newUUID() string {
	u, err := uuid.NewRandomFromReader(rand.Reader)
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(err)
	}
	return u.String()
}

// marshal encodes a response body the way httpx.WriteJSON does.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return buf.Bytes(), nil
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
