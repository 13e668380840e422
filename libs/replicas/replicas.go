// Package replicas is what a caller needs to spread requests over the
// replicas of one service: the comma-separated list of base URLs every
// callee setting takes, a rotation (round robin from a random start) that
// sets a failing replica aside for a short while, and the rules for when a
// failed request may go to another replica without risking a write twice.
// It sends nothing itself: libs/svcclient and the gateway's proxy do, each
// with its own transport. It does no health checks: a replica is set aside
// by the failures its callers see and comes back when the time is up.
package replicas

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSetAside is how long a replica that failed at the transport level
// stays out of the rotation: long enough that the calls right after a crash
// do not each pay for a refused connect, short enough that a restarted
// replica gets its share again within a couple of seconds.
const DefaultSetAside = 1500 * time.Millisecond

// ErrBadURL: an entry of the list is not an absolute http(s) URL.
var ErrBadURL = errors.New("unusable base URL")

// Split splits a setting into its replicas' base URLs: one URL, or several
// separated by commas (blanks and empty entries ignored).
func Split(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
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

// Parse splits s (Split) and checks every entry (CheckURL): the base URLs
// without trailing slashes, or an error naming the first bad entry. An empty
// list is an error too.
func Parse(s string) ([]string, error) {
	urls := Split(s)
	if len(urls) == 0 {
		return nil, fmt.Errorf("%w: %q (no URL)", ErrBadURL, s)
	}
	for i, u := range urls {
		checked, err := CheckURL(u)
		if err != nil {
			if len(urls) > 1 {
				return nil, fmt.Errorf("entry %d of %q: %w", i+1, s, err)
			}
			return nil, err
		}
		urls[i] = checked
	}
	return urls, nil
}

// Rotation orders the replicas for each request: round robin from a random
// start over those not set aside, then the set-aside ones (a replica that
// may be back beats a certain failure). It is keyed by base URL, so the list
// may change between requests (an address learnt late). Safe for
// concurrent use.
type Rotation struct {
	setAside time.Duration
	now      func() time.Time
	next     atomic.Uint64

	mu    sync.Mutex
	until map[string]time.Time // set-aside replicas and when they come back
}

// NewRotation returns a rotation that sets a replica aside for setAside
// (DefaultSetAside when zero).
func NewRotation(setAside time.Duration) *Rotation {
	if setAside <= 0 {
		setAside = DefaultSetAside
	}
	r := &Rotation{setAside: setAside, now: time.Now, until: map[string]time.Time{}}
	r.next.Store(rand.Uint64())
	return r
}

// SetClock replaces the clock (tests).
func (r *Rotation) SetClock(now func() time.Time) { r.now = now }

// Order returns the order in which to try urls for one request. A single
// URL is returned as it is.
func (r *Rotation) Order(urls []string) []string {
	n := len(urls)
	if n <= 1 {
		return urls
	}
	start := int(r.next.Add(1) % uint64(n))
	now := r.now()
	out := make([]string, 0, n)
	var aside []string
	r.mu.Lock()
	for i := range n {
		u := urls[(start+i)%n]
		if until, ok := r.until[u]; ok {
			if now.Before(until) {
				aside = append(aside, u)
				continue
			}
			delete(r.until, u)
		}
		out = append(out, u)
	}
	r.mu.Unlock()
	return append(out, aside...)
}

// SetAside takes u out of the rotation for the set-aside time. It reports
// whether u was in the rotation until now (to log the change once).
func (r *Rotation) SetAside(u string) bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	until, was := r.until[u]
	r.until[u] = now.Add(r.setAside)
	return !was || !now.Before(until)
}

// Restore puts u back into the rotation (it answered).
func (r *Rotation) Restore(u string) {
	r.mu.Lock()
	delete(r.until, u)
	r.mu.Unlock()
}

// Refused reports whether err happened before the replica saw the request
// (a refused or failed connect): such a request may go to another replica
// whatever its method.
func Refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Repeatable reports whether a request may be sent again (to another
// replica) after the replica it went to may have read it: GET and HEAD,
// and a request carrying an Idempotency-Key, which makes a repeat harmless.
// A POST, PUT, PATCH or DELETE without one is not: the replica may have
// acted on it before the connection failed.
func Repeatable(method string, h http.Header) bool {
	return method == http.MethodGet || method == http.MethodHead || h.Get("Idempotency-Key") != ""
}

// ShuttingDown reports whether status is the answer of a replica that
// cannot serve right now (502, 503: draining, or its own upstream gone),
// after which a repeatable request may try another replica.
func ShuttingDown(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable
}
