package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Outcome of one attempt.
type Outcome int

// Outcomes.
const (
	Delivered Outcome = iota
	Retry             // transient: 5xx, 408, 429, network, breaker open
	Reject            // permanent: other 4xx, 3xx (redirects are not followed), refused url
)

// String names the outcome for logs and metrics.
func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Reject:
		return "reject"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Sender defaults.
const (
	defaultTimeout         = 10 * time.Second
	defaultBreakerFailures = 5
	defaultBreakerOpen     = 30 * time.Second
	defaultUserAgent       = "canopy-alerting/1"
	// maxDrain bounds how much of a response body is read so the
	// connection can be reused.
	maxDrain = 64 << 10
	// maxErrorBody is how much of an error response goes into the error.
	maxErrorBody = 512
)

// errRejected marks an attempt the receiver refused for good; the breaker
// counts it as a success (the receiver is up, it just says no).
var errRejected = errors.New("rejected")

// SenderConfig configures a Sender.
type SenderConfig struct {
	Policy  URLPolicy
	Timeout time.Duration // per attempt, default 10s
	// BreakerFailures consecutive failures open a receiver's breaker for
	// BreakerOpen (default 5 and 30s).
	BreakerFailures int
	BreakerOpen     time.Duration
	UserAgent       string
}

// Sender posts payloads to receivers, one breaker per receiver id. Safe
// for concurrent use by the delivery workers.
type Sender struct {
	cfg    SenderConfig
	client *http.Client
	now    func() time.Time

	mu       sync.Mutex
	breakers map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]
}

// NewSender builds a sender. Connections are kept alive and many are kept
// idle per host, since one receiver may get thousands of posts a second.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = defaultBreakerFailures
	}
	if cfg.BreakerOpen <= 0 {
		cfg.BreakerOpen = defaultBreakerOpen
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	return &Sender{
		cfg: cfg,
		client: &http.Client{
			Transport: cfg.Policy.Transport(),
			// A redirect would re-send the signed body elsewhere; the
			// receiver's URL is what the owner configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:      time.Now,
		breakers: map[string]*gobreaker.TwoStepCircuitBreaker[struct{}]{},
	}
}

// Send posts one payload (already JSON) to url for receiverID, signing it
// when secret is set. err explains a non-Delivered outcome.
func (s *Sender) Send(ctx context.Context, receiverID, url, secret string, body []byte) (Outcome, error) {
	if _, err := checkSyntax(url); err != nil {
		return Reject, err
	}
	done, err := s.breaker(receiverID).Allow()
	if err != nil {
		return Retry, fmt.Errorf("receiver %s: breaker: %w", receiverID, err)
	}
	out, err := s.post(ctx, url, secret, body)
	switch {
	case out == Reject:
		done(errRejected)
	case ctx.Err() != nil:
		done(context.Canceled) // ours, not the receiver's fault: excluded
	default:
		done(err)
	}
	if err != nil {
		return out, fmt.Errorf("receiver %s: %w", receiverID, err)
	}
	return out, nil
}

// post makes one attempt and classifies it.
func (s *Sender) post(ctx context.Context, url, secret string, body []byte) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Reject, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.cfg.UserAgent)
	if secret != "" {
		ts := s.now()
		req.Header.Set(TimestampHeader, strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set(SignatureHeader, Sign([]byte(secret), ts, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrURLRefused) {
			return Reject, fmt.Errorf("post: %w", err)
		}
		return Retry, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	return classify(resp)
}

// classify maps a response to an outcome, draining the body for reuse.
func classify(resp *http.Response) (Outcome, error) {
	code := resp.StatusCode
	if code/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return Delivered, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	err := fmt.Errorf("status %d: %s", code, bytes.TrimSpace(snippet))
	if code/100 == 5 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests {
		return Retry, err
	}
	return Reject, err
}

// breaker returns receiverID's breaker, creating it on first use.
func (s *Sender) breaker(receiverID string) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.breakers[receiverID]
	if !ok {
		failures := uint32(s.cfg.BreakerFailures)
		b = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        receiverID,
			MaxRequests: 1,
			Timeout:     s.cfg.BreakerOpen,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			IsSuccessful: func(err error) bool {
				return err == nil || errors.Is(err, errRejected)
			},
			IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		})
		s.breakers[receiverID] = b
	}
	return b
}

// Backoff bounds.
const (
	backoffBase = time.Second
	backoffMax  = 5 * time.Minute
)

// Backoff is the wait before attempt n+1 (exponential from 1s, capped at
// 5m, with jitter): a random wait in [d/2, d] for d = min(1s·2^(n-1), 5m),
// so deliveries that failed together do not retry together. It is a pure
// function of the attempt because the delivery queue lives in the store
// and the next try is written there, not slept on.
func Backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 20 {
		d = min(backoffBase<<(attempt-1), backoffMax)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
