package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/uuid"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/tenancy"
	"github.com/canopy-platform/canopy/services/catalog/internal/mysqlrepo"
)

// idemRequest is an Idempotency-Key request in progress.
type idemRequest struct {
	scope, key, hash string
}

// response returns the record to store with the created resource.
func (i *idemRequest) response(status int, body []byte) *mysqlrepo.IdempotentResponse {
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
// body) or answers 422 (another body) and reports done. The answer is
// stored by the create's own transaction, so there is no "in progress": a
// concurrent first use loses on the key and replays the winner.
func (h *Handler) startIdempotent(w http.ResponseWriter, r *http.Request, op string, body []byte) (idem *idemRequest, done bool) {
	key, err := idempotency.Key(r)
	if err != nil {
		idempotency.WriteProblem(w, r, err)
		return nil, true
	}
	if key == "" {
		return nil, false
	}
	p, _ := tenancy.PrincipalFrom(r.Context())
	idem = &idemRequest{scope: idempotency.Scope(op, p), key: key, hash: idempotency.HashJSONBody(body)}
	if h.replay(w, r, idem) {
		return nil, true
	}
	return idem, false
}

// replay answers from a stored response under idem's key, if there is one.
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, idem *idemRequest) bool {
	stored, ok, err := h.repo.LookupIdempotent(r.Context(), idem.scope, idem.key)
	if err != nil {
		h.writeInternal(w, r, err)
		return true
	}
	if !ok {
		return false
	}
	if err := idempotency.Verdict([]byte(stored.RequestHash), []byte(idem.hash), true); err != nil {
		idempotency.WriteProblem(w, r, err)
		return true
	}
	idempotency.WriteReplay(w, stored.Status, "application/json", stored.Body)
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
