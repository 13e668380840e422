// Package paging reads the limit and cursor query parameters of Canopy list
// endpoints (api/openapi/base.yaml Limit and Cursor) and issues opaque
// cursors, so every service pages the same way and refuses bad parameters
// with the same 400. Three cursor shapes exist on the wire and stay readable:
// base64url JSON (Parse/Encode), base64url of one key (ParseKey/EncodeKey)
// and a plain id (ParseRaw). It does not query storage; Split cuts the
// limit+1 rows a repository returned into a page.
package paging

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/canopy-platform/canopy/libs/httpx"
)

// Limits of the limit and cursor parameters.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	// MaxCursorLen bounds the cursor parameter.
	MaxCursorLen = 512
	// MaxKeyLen bounds the decoded key of a key cursor.
	MaxKeyLen = 128
)

// ErrInvalid is wrapped by every refusal of a paging parameter.
var ErrInvalid = errors.New("invalid paging parameter")

// FieldError names the invalid parameter.
type FieldError struct{ Field, Reason string }

// Error formats the field error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes every FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// The refusals, shared so that a refusal allocates nothing.
var (
	errLimit     = &FieldError{Field: "limit", Reason: fmt.Sprintf("must be an integer between 1 and %d", MaxLimit)}
	errTooLong   = &FieldError{Field: "cursor", Reason: "is too long"}
	errNotIssued = &FieldError{Field: "cursor", Reason: "is not a cursor this endpoint issued"}
)

// Problem is the 400 answer for err: the field error, or err's text.
func Problem(err error) *httpx.Problem {
	var fe *FieldError
	if errors.As(err, &fe) {
		return httpx.BadRequest("invalid query parameter", httpx.FieldError{Field: fe.Field, Reason: fe.Reason})
	}
	return httpx.BadRequest(err.Error())
}

// ParseLimit reads limit from q, def when absent.
func ParseLimit(q url.Values, def int) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, errLimit
	}
	return n, nil
}

// ParseRaw reads limit (def when absent) and a plain cursor (an id the
// endpoint returned as next_cursor, passed back as is).
func ParseRaw(q url.Values, def int) (limit int, cursor string, err error) {
	if limit, err = ParseLimit(q, def); err != nil {
		return 0, "", err
	}
	cursor = q.Get("cursor")
	if len(cursor) > MaxCursorLen {
		return 0, "", errTooLong
	}
	return limit, cursor, nil
}

// Parse reads limit (DefaultLimit when absent) and cursor from q, decoding
// a base64url JSON cursor into dst when present, and reports whether one was given.
func Parse(q url.Values, dst any) (limit int, hasCursor bool, err error) {
	if limit, err = ParseLimit(q, DefaultLimit); err != nil {
		return 0, false, err
	}
	c := q.Get("cursor")
	if c == "" {
		return limit, false, nil
	}
	if len(c) > MaxCursorLen {
		return 0, false, errTooLong
	}
	raw, decErr := base64.RawURLEncoding.DecodeString(c)
	if decErr != nil || json.Unmarshal(raw, dst) != nil {
		return 0, false, errNotIssued
	}
	return limit, true, nil
}

// Encode returns the opaque JSON cursor for v.
func Encode(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		// Cursors are small structs of strings and times; this cannot fail.
		panic(fmt.Sprintf("encode cursor: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// ParseKey reads limit (DefaultLimit when absent) and a key cursor: the
// base64url of the last key of the previous page, "" when absent.
func ParseKey(q url.Values) (limit int, key string, err error) {
	if limit, err = ParseLimit(q, DefaultLimit); err != nil {
		return 0, "", err
	}
	c := q.Get("cursor")
	if c == "" {
		return limit, "", nil
	}
	if len(c) > MaxCursorLen {
		return 0, "", errNotIssued
	}
	b, decErr := base64.RawURLEncoding.DecodeString(c)
	if decErr != nil || len(b) == 0 || len(b) > MaxKeyLen {
		return 0, "", errNotIssued
	}
	return limit, string(b), nil
}

// EncodeKey returns the key cursor for key.
func EncodeKey(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// Split cuts the up to limit+1 items a repository returned into the page
// and whether there are more; the next cursor is then made of page's last item.
func Split[T any](items []T, limit int) (page []T, more bool) {
	if len(items) > limit {
		return items[:limit], true
	}
	return items, false
}

// KeyPage cuts the up to limit+1 rows a repository returned into the page,
// converted with conv, and the key cursor of the next page ("" on the last
// page), made of the page's last row's key.
func KeyPage[T, U any](rows []T, limit int, key func(T) string, conv func(T) U) (items []U, next string) {
	page, more := Split(rows, limit)
	items = make([]U, 0, len(page))
	for _, r := range page {
		items = append(items, conv(r))
	}
	if more {
		next = EncodeKey(key(page[len(page)-1]))
	}
	return items, next
}
