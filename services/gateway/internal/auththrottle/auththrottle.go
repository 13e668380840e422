// Package auththrottle counts failed authentications per client address in
// Redis, shared by every gateway replica, and refuses an address that failed
// too often in the current window before its credentials are looked up: a
// client guessing or replaying unknown API keys (or broker credentials) then
// costs neither a database query nor an upstream call. It is a fixed window
// per address, not a lockout of accounts, and it knows nothing of HTTP.
package auththrottle

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrThrottled is what a *ThrottledError matches with errors.Is.
var ErrThrottled = errors.New("too many failed authentications")

// ThrottledError refuses an address that failed too often.
type ThrottledError struct {
	// RetryAfter is when the address's window ends.
	RetryAfter time.Duration
}

// Error describes the refusal.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v; retry after %v", ErrThrottled, e.RetryAfter)
}

// Is matches ErrThrottled.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// Config tunes the Throttle.
type Config struct {
	// Prefix namespaces the Redis keys (e.g. "canopy:gateway:rl:"); tests use a unique one.
	Prefix string
	// Failures is how many failures an address may have per Window; 20 when zero.
	Failures int
	// Window is the counting window; one minute when zero.
	Window time.Duration
	// Timeout bounds one Redis call; 250ms when zero.
	Timeout time.Duration
	// MaxRemembered bounds the addresses remembered as throttled in memory.
	MaxRemembered int
}

func (c Config) withDefaults() Config {
	if c.Failures <= 0 {
		c.Failures = 20
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 250 * time.Millisecond
	}
	if c.MaxRemembered <= 0 {
		c.MaxRemembered = 10_000
	}
	return c
}

// Throttle counts failures per address.
type Throttle struct {
	rdb redis.UniversalClient
	cfg Config
	now func() time.Time

	mu sync.Mutex
	// blocked remembers addresses Redis reported over the limit, until their
	// window ends, so a flood from one of them costs no Redis call either.
	blocked map[string]time.Time
}

// New returns a Throttle on rdb.
func New(rdb redis.UniversalClient, cfg Config, now func() time.Time) (*Throttle, error) {
	if rdb == nil {
		return nil, errors.New("new auth throttle: nil redis client")
	}
	if now == nil {
		now = time.Now
	}
	return &Throttle{rdb: rdb, cfg: cfg.withDefaults(), now: now, blocked: map[string]time.Time{}}, nil
}

// Blocked reports, from memory only, whether addr is known to be throttled
// and for how long; it never calls Redis.
func (t *Throttle) Blocked(addr string) (time.Duration, bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.blocked[addr]
	if !ok {
		return 0, false
	}
	if !now.Before(until) {
		delete(t.blocked, addr)
		return 0, false
	}
	return until.Sub(now), true
}

// Check asks Redis whether addr has used up its failures; it returns a
// *ThrottledError when it has, and a Redis error otherwise wrapped (callers
// choose fail-open or not).
func (t *Throttle) Check(ctx context.Context, addr string) error {
	if d, ok := t.Blocked(addr); ok {
		return &ThrottledError{RetryAfter: d}
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	key := t.key(addr)
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		ttl = p.PTTL(ctx, key)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return nil // no failures in this window
	}
	if err != nil {
		return fmt.Errorf("check auth failures of %s: %w", addr, err)
	}
	n, err := get.Int()
	if err != nil {
		return fmt.Errorf("check auth failures of %s: %w", addr, err)
	}
	return t.verdict(addr, int64(n), ttl.Val())
}

// failScript counts one failure and starts the window with the first one.
var failScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
`)

// Fail records one failed authentication of addr. It returns a
// *ThrottledError when addr has now used up its failures (the failing
// request itself is answered as the failure it is; the next ones are refused).
func (t *Throttle) Fail(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	res, err := failScript.Run(ctx, t.rdb, []string{t.key(addr)}, t.cfg.Window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		return fmt.Errorf("count auth failure of %s: %w (%d values)", addr, err, len(res))
	}
	return t.verdict(addr, res[0], time.Duration(res[1])*time.Millisecond)
}

// verdict turns a window's count and remaining time into nil or a
// *ThrottledError, remembering a throttled address.
func (t *Throttle) verdict(addr string, n int64, ttl time.Duration) error {
	if n < int64(t.cfg.Failures) {
		return nil
	}
	if ttl <= 0 { // no expiry (should not happen) or just expired: a short wait
		ttl = time.Second
	}
	until := t.now().Add(ttl)
	t.mu.Lock()
	if len(t.blocked) >= t.cfg.MaxRemembered {
		// Forgetting is safe: a forgotten address is asked about in Redis again.
		clear(t.blocked)
	}
	t.blocked[addr] = until
	t.mu.Unlock()
	return &ThrottledError{RetryAfter: ttl}
}

func (t *Throttle) key(addr string) string { return t.cfg.Prefix + "authfail:" + addr }

// Resolver picks the address a request is throttled by: the TCP peer, or,
// when the peer is a trusted proxy (a load balancer, an ingress), the
// nearest address in X-Forwarded-For that is not one. Without trusted
// proxies every client behind an ingress would share the ingress's address,
// and one client's failures would lock out all of them.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a Resolver trusting the proxies in the given CIDRs
// (or single addresses).
func NewResolver(trusted []string) (*Resolver, error) {
	r := &Resolver{}
	for _, s := range trusted {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: not a CIDR or an IP address", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

// Addr returns the throttling address of a request from remoteAddr (the
// peer, "host:port") carrying the X-Forwarded-For header values
// forwardedFor. Entries are read right to left, since only those appended
// by trusted proxies can be believed; an unparsable entry ends the walk.
func (r *Resolver) Addr(remoteAddr string, forwardedFor []string) string {
	peer, ok := parseHost(remoteAddr)
	if !ok {
		return remoteAddr
	}
	client := peer
	if r.isTrusted(client) {
	walk:
		for i := len(forwardedFor) - 1; i >= 0; i-- {
			hops := strings.Split(forwardedFor[i], ",")
			for j := len(hops) - 1; j >= 0; j-- {
				hop, ok := parseHost(strings.TrimSpace(hops[j]))
				if !ok {
					break walk
				}
				client = hop
				if !r.isTrusted(hop) {
					break walk
				}
			}
		}
	}
	return addrKey(client)
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the throttling address of a peer ("host:port" or a bare
// host) without trusted proxies.
func ClientAddr(remote string) string {
	a, ok := parseHost(remote)
	if !ok {
		return remote
	}
	return addrKey(a)
}

func parseHost(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err == nil
}

// addrKey is an IP, or for IPv6 its /64 network, since one client is
// usually given a whole /64 and could rotate through it.
func addrKey(ip netip.Addr) string {
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}
