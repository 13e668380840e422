// Package svcclient is the one HTTP client for signed service-to-service
// calls: it checks the callee's base URL, bounds each request in time and
// body size, signs the caller's identity for the callee's audience with
// libs/tenancy, and hands back the body of a 200 (a 2xx for Do and
// PostJSON, which send a JSON body) or a typed status error.
// It knows no service's paths or payloads; each service's client package
// keeps those and maps statuses to its own sentinels. It does not retry or
// cache: callers decide.
package svcclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Defaults of Config.
const (
	DefaultTimeout = 10 * time.Second
	DefaultMaxBody = 1 << 20
)

// ErrBadURL: the callee's base URL is not an absolute http(s) URL.
var ErrBadURL = errors.New("unusable base URL")

// ErrNoSecret: the internal secret is empty.
var ErrNoSecret = errors.New("empty internal secret")

// ErrUnavailable: the callee could not be asked (no usable URL yet,
// transport failure, timeout, unreadable answer).
var ErrUnavailable = errors.New("service unavailable")

// StatusError is an answer with a status other than 200.
type StatusError struct {
	// Target is the request line's method and path.
	Target string
	// Status is the HTTP status code.
	Status int
	// Body is the start of the answer, up to the body limit.
	Body []byte
}

// Error reports the status and the answer's start.
func (e *StatusError) Error() string {
	b := e.Body
	if len(b) > maxErrorBody {
		b = b[:maxErrorBody]
	}
	return fmt.Sprintf("%s: answered %d: %s", e.Target, e.Status, strings.TrimSpace(string(b)))
}

// maxErrorBody keeps error messages (and logs) short whatever the body limit.
const maxErrorBody = 512

// ProblemType is the type of a problem+json answer, "" for anything else.
func (e *StatusError) ProblemType() string {
	var p struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(e.Body, &p) != nil {
		return ""
	}
	return p.Type
}

// AsStatus returns the StatusError in err's chain, if any.
func AsStatus(err error) (*StatusError, bool) {
	var se *StatusError
	ok := errors.As(err, &se)
	return se, ok
}

// Config configures a Client.
type Config struct {
	// Audience is the callee's name the signature is bound to (tenancy.Audience*); required.
	Audience string
	// Secret is the internal secret; required.
	Secret []byte
	// BaseURL is the callee's base URL (e.g. http://127.0.0.1:8082), checked by New.
	BaseURL string
	// BaseURLFunc, when set instead of BaseURL, is asked per request, so an
	// address known only after start (the all-in-one binary) can come late;
	// an unusable answer fails the call with ErrUnavailable.
	BaseURLFunc func() string
	// Timeout bounds one request, answer included; DefaultTimeout when zero.
	Timeout time.Duration
	// MaxBody bounds the answer read; DefaultMaxBody when zero.
	MaxBody int64
	// HTTP is the transport client; a new one when nil.
	HTTP *http.Client
}

// Client sends signed requests to one service.
type Client struct {
	cfg    Config
	base   func() string
	signer *tenancy.Signer
}

// CheckURL returns base without trailing slashes when it is an absolute
// http(s) URL with a host; otherwise an error wrapping ErrBadURL.
func CheckURL(base string) (string, error) {
	trimmed := strings.TrimRight(base, "/")
	u, err := url.Parse(trimmed)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%w: %q", ErrBadURL, base)
	}
	return trimmed, nil
}

// New returns a client; the base URL (when static) and the secret are checked here.
func New(cfg Config) (*Client, error) {
	if cfg.Audience == "" {
		return nil, errors.New("svcclient: empty audience")
	}
	if len(cfg.Secret) == 0 {
		return nil, fmt.Errorf("svcclient for %s: %w", cfg.Audience, ErrNoSecret)
	}
	c := &Client{cfg: cfg, signer: tenancy.NewSigner(cfg.Secret)}
	switch {
	case cfg.BaseURLFunc != nil:
		c.base = cfg.BaseURLFunc
	default:
		base, err := CheckURL(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("svcclient for %s: %w", cfg.Audience, err)
		}
		c.base = func() string { return base }
	}
	if c.cfg.Timeout <= 0 {
		c.cfg.Timeout = DefaultTimeout
	}
	if c.cfg.MaxBody <= 0 {
		c.cfg.MaxBody = DefaultMaxBody
	}
	if c.cfg.HTTP == nil {
		c.cfg.HTTP = &http.Client{}
	}
	return c, nil
}

// Get sends a GET of path (with its query, already escaped) signed as p and
// returns the body of a 200 answer; another status is a *StatusError, and a
// call that got no answer wraps ErrUnavailable.
func (c *Client) Get(ctx context.Context, p tenancy.Principal, path string) ([]byte, error) {
	status, body, err := c.send(ctx, p, http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &StatusError{Target: "GET " + path, Status: status, Body: body}
	}
	return body, nil
}

// Do sends method to path with v encoded as its JSON body (nil: no body)
// and the extra header values (an Idempotency-Key, say), signed as p, and
// returns the status and body of a 2xx answer; another status is a
// *StatusError, and a call that got no answer wraps ErrUnavailable.
func (c *Client) Do(ctx context.Context, p tenancy.Principal, method, path string, v any, header http.Header) (int, []byte, error) {
	target := method + " " + path
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return 0, nil, fmt.Errorf("%s: encode body: %w", target, err)
		}
	}
	status, answer, err := c.send(ctx, p, method, path, body, header)
	if err != nil {
		return 0, nil, err
	}
	if status/100 != 2 {
		return status, nil, &StatusError{Target: target, Status: status, Body: answer}
	}
	return status, answer, nil
}

// PostJSON is Do with POST, decoding a 2xx answer's body into dst (when
// dst is not nil and the answer has a body).
func (c *Client) PostJSON(ctx context.Context, p tenancy.Principal, path string, v any, header http.Header, dst any) error {
	_, body, err := c.Do(ctx, p, http.MethodPost, path, v, header)
	if err != nil {
		return err
	}
	if dst == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("POST %s: decode answer: %w", path, err)
	}
	return nil
}

// send signs and sends one request and reads its answer up to the limit.
func (c *Client) send(ctx context.Context, p tenancy.Principal, method, path string, body []byte, header http.Header) (int, []byte, error) {
	target := method + " " + path
	base, err := CheckURL(c.base())
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w: %w", target, ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: build request: %w", target, err)
	}
	for k, vs := range header {
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.signer.SignRequest(req, body, c.cfg.Audience, p)
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w: %w", target, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody))
	if err != nil {
		return 0, nil, fmt.Errorf("%s: read answer: %w: %w", target, ErrUnavailable, err)
	}
	return resp.StatusCode, answer, nil
}

// GetJSON is Get, decoding the 200 answer into dst.
func (c *Client) GetJSON(ctx context.Context, p tenancy.Principal, path string, dst any) error {
	body, err := c.Get(ctx, p, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	return nil
}

// ListAll GETs a cursor-paginated list in full: path?limit=limit, then
// with &cursor= set to each answer's next_cursor until it is empty (or
// repeats, so a callee that never advances cannot loop us), and returns the
// items of every page, read from the answer's field (e.g. "instances").
func ListAll[T any](ctx context.Context, c *Client, p tenancy.Principal, path string, limit int, field string) ([]T, error) {
	var all []T
	cursor := ""
	for {
		page := path + "?limit=" + fmt.Sprint(limit)
		if cursor != "" {
			page += "&cursor=" + url.QueryEscape(cursor)
		}
		var answer map[string]json.RawMessage
		if err := c.GetJSON(ctx, p, page, &answer); err != nil {
			return nil, err
		}
		var items []T
		if raw, ok := answer[field]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("GET %s: decode %s: %w", page, field, err)
			}
		}
		all = append(all, items...)
		var next string
		if raw, ok := answer["next_cursor"]; ok {
			_ = json.Unmarshal(raw, &next) // null or absent: the last page
		}
		if next == "" || next == cursor {
			return all, nil
		}
		cursor = next
	}
}
