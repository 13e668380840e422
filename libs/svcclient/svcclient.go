// Package svcclient is the one HTTP client for signed service-to-service
// calls: it checks the callee's base URLs, bounds each request in time and
// body size, signs the caller's identity for the callee's audience with
// libs/tenancy, and hands back the body of a 200 (a 2xx for Do and
// PostJSON, which send a JSON body) or a typed status error.
//
// A callee may have several replicas: its base URL setting is then a
// comma-separated list (the form the gateway's upstream settings take).
// Requests go round robin over them from a random start (libs/replicas); a
// replica that fails at the transport level is set aside for a short time
// (DefaultSetAside; when all are, they are tried anyway), and the request
// goes to the next replica only when that cannot do a write twice: always
// after a refused connect (the replica never saw it), and for GET, HEAD and
// a request with an Idempotency-Key also after any other transport failure
// or a 502/503 answer (a replica shutting down). A POST, PUT, PATCH or
// DELETE without a key that a replica may have read is not resent; its
// error says so. Every attempt is signed afresh (its own nonce, the target
// of its own base URL). One URL behaves as before lists: one attempt.
//
// It knows no service's paths or payloads; each service's client package
// keeps those and maps statuses to its own sentinels. Beyond going to
// another replica it does not retry or cache: callers decide.
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
	"sync/atomic"
	"time"

	"github.com/canopy-platform/canopy/libs/replicas"
	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Defaults of Config.
const (
	DefaultTimeout = 10 * time.Second
	DefaultMaxBody = 1 << 20
)

// ErrBadURL: a base URL of the callee is not an absolute http(s) URL.
var ErrBadURL = replicas.ErrBadURL

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

// ErrNotResent marks the failure of a request that a replica may have
// read and acted on, and that was therefore not sent to another replica (a
// POST, PUT, PATCH or DELETE without an Idempotency-Key). It comes with
// ErrUnavailable.
var ErrNotResent = errors.New("not resent to another replica: the replica may have acted on it and the request has no Idempotency-Key")

// DefaultSetAside is how long a replica that failed at the transport level
// is left out of the rotation.
const DefaultSetAside = replicas.DefaultSetAside

// Config configures a Client.
type Config struct {
	// Audience is the callee's name the signature is bound to (tenancy.Audience*); required.
	Audience string
	// Secret is the internal secret; required.
	Secret []byte
	// BaseURL is the callee's base URL (e.g. http://127.0.0.1:8082), or the
	// comma-separated base URLs of its replicas, each checked by New.
	BaseURL string
	// BaseURLFunc, when set instead of BaseURL, is asked per request, so an
	// address known only after start (the all-in-one binary) can come late;
	// it may answer a list too. An unusable answer fails the call with
	// ErrUnavailable.
	BaseURLFunc func() string
	// Timeout bounds one call, answer included, over all the replicas it
	// tries; DefaultTimeout when zero.
	Timeout time.Duration
	// MaxBody bounds the answer read; DefaultMaxBody when zero.
	MaxBody int64
	// HTTP is the transport client; a new one when nil.
	HTTP *http.Client
}

// Client sends signed requests to one service.
type Client struct {
	cfg      Config
	bases    func() ([]string, error)
	rotation *replicas.Rotation
	signer   *tenancy.Signer
}

// CheckURL returns base without trailing slashes when it is an absolute
// http(s) URL with a host; otherwise an error wrapping ErrBadURL.
func CheckURL(base string) (string, error) { return replicas.CheckURL(base) }

// CheckURLs checks a base URL setting, one URL or a comma-separated list
// of them (the callee's replicas): the error names the first bad entry.
func CheckURLs(s string) error {
	_, err := replicas.Parse(s)
	return err
}

// New returns a client; the base URLs (when static) and the secret are checked here.
func New(cfg Config) (*Client, error) {
	if cfg.Audience == "" {
		return nil, errors.New("svcclient: empty audience")
	}
	if len(cfg.Secret) == 0 {
		return nil, fmt.Errorf("svcclient for %s: %w", cfg.Audience, ErrNoSecret)
	}
	c := &Client{cfg: cfg, signer: tenancy.NewSigner(cfg.Secret), rotation: replicas.NewRotation(DefaultSetAside)}
	switch {
	case cfg.BaseURLFunc != nil:
		c.bases = lateBases(cfg.BaseURLFunc)
	default:
		bases, err := replicas.Parse(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("svcclient for %s: %w", cfg.Audience, err)
		}
		c.bases = func() ([]string, error) { return bases, nil }
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

// lateBases parses what f answers, reusing the last parse while the answer
// stays the same (it does, once the address is known).
func lateBases(f func() string) func() ([]string, error) {
	type parsed struct {
		raw   string
		bases []string
	}
	var last atomic.Pointer[parsed]
	return func() ([]string, error) {
		raw := f()
		if p := last.Load(); p != nil && p.raw == raw {
			return p.bases, nil
		}
		bases, err := replicas.Parse(raw)
		if err != nil {
			return nil, err
		}
		last.Store(&parsed{raw: raw, bases: bases})
		return bases, nil
	}
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

// send sends one request, to one replica or, when that is safe, to the
// next after a failure (see the package doc), and reads its answer up to
// the limit.
func (c *Client) send(ctx context.Context, p tenancy.Principal, method, path string, body []byte, header http.Header) (int, []byte, error) {
	target := method + " " + path
	bases, err := c.bases()
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w: %w", target, ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	order := c.rotation.Order(bases)
	repeatable := replicas.Repeatable(method, header)
	for i, base := range order {
		last := i == len(order)-1
		status, answer, err := c.attempt(ctx, p, method, base+path, body, header)
		if err != nil {
			if ctx.Err() != nil {
				// Our own deadline or the caller's: no time for another replica.
				return 0, nil, fmt.Errorf("%s: %w: %w", target, ErrUnavailable, err)
			}
			c.rotation.SetAside(base)
			if replicas.Refused(err) || repeatable {
				if last {
					return 0, nil, fmt.Errorf("%s: %w: %w", target, ErrUnavailable, err)
				}
				continue
			}
			if len(order) > 1 {
				return 0, nil, fmt.Errorf("%s: %w: %w: %w", target, ErrUnavailable, ErrNotResent, err)
			}
			return 0, nil, fmt.Errorf("%s: %w: %w", target, ErrUnavailable, err)
		}
		if replicas.ShuttingDown(status) && repeatable && !last {
			c.rotation.SetAside(base)
			continue
		}
		c.rotation.Restore(base)
		return status, answer, nil
	}
	panic("unreachable: the order is never empty")
}

// attempt signs and sends the request to target (a replica's base URL and
// the path) and reads the answer. The signature binds the target's path (a
// replica's base path included) and carries a nonce of its own, so each
// attempt is signed anew.
func (c *Client) attempt(ctx context.Context, p tenancy.Principal, method, target string, body []byte, header http.Header) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
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
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBody))
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
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
