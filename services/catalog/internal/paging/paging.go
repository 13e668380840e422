// Package paging parses the limit and cursor query parameters of Canopy list
// endpoints and encodes opaque cursors. A cursor is base64url JSON that only
// the endpoint that issued it understands; clients pass it back unchanged.
package paging

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// Limits of the limit parameter (api/openapi/base.yaml components/parameters/Limit).
const (
	DefaultLimit = 50
	MaxLimit     = 500
	// MaxCursorLen bounds the cursor parameter.
	MaxCursorLen = 512
)

// FieldError names the invalid parameter.
type FieldError struct{ Field, Reason string }

// Error formats the field error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Parse reads limit and cursor from q, decoding the cursor into dst (when
// present), and reports whether a cursor was given.
func Parse(q url.Values, dst any) (limit int, hasCursor bool, err error) {
	limit = DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, convErr := strconv.Atoi(s)
		if convErr != nil || n < 1 || n > MaxLimit {
			return 0, false, &FieldError{Field: "limit", Reason: fmt.Sprintf("must be an integer between 1 and %d", MaxLimit)}
		}
		limit = n
	}
	c := q.Get("cursor")
	if c == "" {
		return limit, false, nil
	}
	if len(c) > MaxCursorLen {
		return 0, false, &FieldError{Field: "cursor", Reason: "is too long"}
	}
	raw, decErr := base64.RawURLEncoding.DecodeString(c)
	if decErr != nil || json.Unmarshal(raw, dst) != nil {
		return 0, false, &FieldError{Field: "cursor", Reason: "is not a cursor this endpoint issued"}
	}
	return limit, true, nil
}

// Encode returns the opaque cursor for v.
func Encode(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		// Cursors are small structs of strings and times; this cannot fail.
		panic(fmt.Sprintf("encode cursor: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}
