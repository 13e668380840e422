package apikey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Store is what the Authenticator needs from persistence.
type Store interface {
	// KeyByID returns the key with id or ErrNotFound.
	KeyByID(ctx context.Context, id string) (Key, error)
	// TouchKeys records last-used times, one per key id.
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// AuthConfig tunes the Authenticator's cache.
type AuthConfig struct {
	// CacheTTL is how long a looked-up key is trusted without re-reading it.
	// Revocations in this process apply at once; in other replicas within CacheTTL.
	CacheTTL time.Duration
	// NegativeTTL is how long an unknown key id is remembered as unknown, so
	// that repeating it costs no store read.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache of known keys; when full, expired entries
	// are dropped and, if that is not enough, the cache is reset.
	MaxEntries int
	// MaxUnknown bounds the cache of unknown key ids separately, so a flood
	// of made-up ids can never push the known keys out (and their load onto
	// the store); when full, expired ids are dropped, then all unknown ones.
	MaxUnknown int
	// FlushInterval is how often last-used times are written.
	FlushInterval time.Duration
}

func (c AuthConfig) withDefaults() AuthConfig {
	if c.CacheTTL <= 0 {
		c.CacheTTL = 10 * time.Second
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = 5 * time.Second
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100_000
	}
	if c.MaxUnknown <= 0 {
		c.MaxUnknown = 10_000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 10 * time.Second
	}
	return c
}

type entry struct {
	key        Key
	found      bool
	expires    time.Time
	refreshAt  time.Time    // after this a request starts a background re-read
	refreshing atomic.Bool  // a background re-read runs
	lastUsed   atomic.Int64 // unix nanos of the last successful use not yet flushed; 0 when clean
}

// Authenticator resolves bearer tokens to principals through a short-lived
// in-memory cache, and batches last-used updates.
type Authenticator struct {
	store  Store
	cfg    AuthConfig
	logger *slog.Logger
	now    func() time.Time

	mu      sync.RWMutex
	entries map[string]*entry
	// unknown holds, per key id the store did not have, when to ask again.
	unknown map[string]time.Time
	// pending holds last-used times of entries evicted before a flush.
	pending map[string]time.Time
}

// NewAuthenticator returns an Authenticator reading keys from store.
func NewAuthenticator(store Store, cfg AuthConfig, logger *slog.Logger, now func() time.Time) (*Authenticator, error) {
	if store == nil || logger == nil {
		return nil, errors.New("new authenticator: nil store or logger")
	}
	if now == nil {
		now = time.Now
	}
	return &Authenticator{store: store, cfg: cfg.withDefaults(), logger: logger, now: now,
		entries: map[string]*entry{}, unknown: map[string]time.Time{}, pending: map[string]time.Time{}}, nil
}

// Gate is consulted before a key id is read from the store, never when the
// answer is cached; an error from it is returned as is, without the read.
// The gateway gates on its failed-authentication throttle.
type Gate func(ctx context.Context) error

// Authenticate checks an Authorization header value ("Bearer <token>") and
// returns the key it belongs to. Every failure is ErrInvalidKey (wrapped only
// for store errors, which are not the client's fault).
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (Key, error) {
	return a.AuthenticateGated(ctx, authorization, nil)
}

// AuthenticateGated is Authenticate with gate (if not nil) asked before
// any store read; its error is returned unwrapped.
func (a *Authenticator) AuthenticateGated(ctx context.Context, authorization string, gate Gate) (Key, error) {
	token, ok := bearer(authorization)
	if !ok {
		return Key{}, ErrInvalidKey
	}
	id, secret, ok := ParseToken(token)
	if !ok {
		id, secret = BootstrapID, token
	}
	now := a.now()
	e, err := a.lookup(ctx, id, now, gate)
	if err != nil {
		return Key{}, err
	}
	if !e.found || e.key.RevokedAt != nil || !e.key.Matches(secret) {
		return Key{}, ErrInvalidKey
	}
	e.lastUsed.Store(now.UnixNano())
	return e.key, nil
}

// AuthenticateID returns the key with id if it exists and is not revoked,
// through the same cache as Authenticate (so a revocation applies within
// CacheTTL): a portal session acts as the key it was made from without
// keeping its secret. Every failure is ErrInvalidKey (wrapped only for
// store errors); gate is as for AuthenticateGated.
func (a *Authenticator) AuthenticateID(ctx context.Context, id string, gate Gate) (Key, error) {
	if !ValidID(id) {
		return Key{}, ErrInvalidKey
	}
	now := a.now()
	e, err := a.lookup(ctx, id, now, gate)
	if err != nil {
		return Key{}, err
	}
	if !e.found || e.key.RevokedAt != nil {
		return Key{}, ErrInvalidKey
	}
	e.lastUsed.Store(now.UnixNano())
	return e.key, nil
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(h[len(p):])
	return t, t != "" && len(t) <= 256
}

// notFound is the entry every unknown key id shares.
var notFound = &entry{}

func (a *Authenticator) lookup(ctx context.Context, id string, now time.Time, gate Gate) (*entry, error) {
	a.mu.RLock()
	e := a.entries[id]
	retryAt, unknown := a.unknown[id]
	a.mu.RUnlock()
	if unknown && now.Before(retryAt) {
		return notFound, nil
	}
	if e != nil && now.Before(e.expires) {
		// Re-read a key in use shortly before its entry expires, off the
		// request path, so busy keys never wait for the store. The entry is
		// still honoured only until it expires, as before.
		if e.found && !now.Before(e.refreshAt) && e.refreshing.CompareAndSwap(false, true) {
			go a.refresh(id, e)
		}
		return e, nil
	}
	if gate != nil {
		if err := gate(ctx); err != nil {
			return nil, err
		}
	}
	return a.load(ctx, id, now, nil)
}

// refresh re-reads key id for the entry old in the background.
func (a *Authenticator) refresh(id string, old *entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.load(ctx, id, a.now(), old); err != nil {
		a.logger.Warn("refresh api key", "key_id", id, "err", err)
		old.refreshing.Store(false) // let a later request try again
	}
}

// load reads key id from the store and caches it. With replaces set, the new
// entry is installed only if replaces is still the cached one (a concurrent
// Invalidate or load wins).
func (a *Authenticator) load(ctx context.Context, id string, now time.Time, replaces *entry) (*entry, error) {
	k, err := a.store.KeyByID(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("look up api key: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.entries[id]
	if replaces != nil && old != replaces {
		if err != nil {
			return notFound, nil
		}
		return &entry{key: k, found: true, expires: now.Add(a.cfg.CacheTTL)}, nil
	}
	if old != nil {
		a.keepLastUsed(id, old)
		delete(a.entries, id)
	}
	if err != nil { // not found
		if len(a.unknown) >= a.cfg.MaxUnknown {
			a.evictUnknownLocked(now)
		}
		a.unknown[id] = now.Add(a.cfg.NegativeTTL)
		return notFound, nil
	}
	delete(a.unknown, id)
	fresh := &entry{key: k, found: true, expires: now.Add(a.cfg.CacheTTL), refreshAt: now.Add(a.cfg.CacheTTL - a.cfg.CacheTTL/5)}
	if len(a.entries) >= a.cfg.MaxEntries {
		a.evictLocked(now)
	}
	a.entries[id] = fresh
	return fresh, nil
}

// evictUnknownLocked makes room in the unknown ids. Callers hold mu.
func (a *Authenticator) evictUnknownLocked(now time.Time) {
	for id, retryAt := range a.unknown {
		if !now.Before(retryAt) {
			delete(a.unknown, id)
		}
	}
	if len(a.unknown) >= a.cfg.MaxUnknown {
		clear(a.unknown)
	}
}

// keepLastUsed moves a dirty entry's last-used time to pending. Callers hold mu.
func (a *Authenticator) keepLastUsed(id string, e *entry) {
	if ts := e.lastUsed.Swap(0); ts != 0 {
		a.pending[id] = time.Unix(0, ts).UTC()
	}
}

func (a *Authenticator) evictLocked(now time.Time) {
	for id, e := range a.entries {
		if !now.Before(e.expires) {
			a.keepLastUsed(id, e)
			delete(a.entries, id)
		}
	}
	if len(a.entries) >= a.cfg.MaxEntries {
		for id, e := range a.entries {
			a.keepLastUsed(id, e)
			delete(a.entries, id)
		}
	}
}

// Invalidate forgets key id, so its next use reads the store again. Call it
// after a revocation.
func (a *Authenticator) Invalidate(id string) {
	a.mu.Lock()
	if e := a.entries[id]; e != nil {
		a.keepLastUsed(id, e)
		delete(a.entries, id)
	}
	delete(a.unknown, id)
	a.mu.Unlock()
}

// Flush writes the last-used times collected since the previous flush.
func (a *Authenticator) Flush(ctx context.Context) error {
	a.mu.Lock()
	used := a.pending
	a.pending = map[string]time.Time{}
	for id, e := range a.entries {
		if ts := e.lastUsed.Swap(0); ts != 0 {
			used[id] = time.Unix(0, ts).UTC()
		}
	}
	a.mu.Unlock()
	if len(used) == 0 {
		return nil
	}
	if err := a.store.TouchKeys(ctx, used); err != nil {
		// Put them back so the next flush retries; newer uses win.
		a.mu.Lock()
		for id, t := range used {
			if cur, ok := a.pending[id]; !ok || cur.Before(t) {
				a.pending[id] = t
			}
		}
		a.mu.Unlock()
		return fmt.Errorf("flush api key last-used times: %w", err)
	}
	return nil
}

// Run flushes last-used times every FlushInterval until ctx ends, then once more.
func (a *Authenticator) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := a.Flush(fctx); err != nil {
				a.logger.Warn("final last-used flush failed", "err", err)
			}
			return nil
		case <-t.C:
			if err := a.Flush(ctx); err != nil {
				a.logger.Warn("last-used flush failed", "err", err)
			}
		}
	}
}
