// Package aofarchive archives a Redis primary's append-only file as it
// grows, for restores to the second: it reads the node's multi-part AOF
// (Redis 7: a manifest naming one base file and the incr files after it)
// on the node's host, and hands the engine a base segment each time a new
// base appears and, every poll, the complete commands appended since the
// last one. Chains, positions and planning are the backup domain's
// (backup.AOFPos); storing segments is the sink's.
package aofarchive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Source is the node whose AOF is archived: its address and admin
// account, and its data directory on this host (used when CONFIG GET dir
// is refused).
type Source struct {
	NodeID   string
	Address  string
	User     string
	Password string
	DataDir  string
}

// Locate finds the instance's current primary.
type Locate func(ctx context.Context) (Source, error)

// Segment is one piece of the archive: a base file (Base, read from
// File) or the complete commands Data of an incr file from Start to End.
type Segment struct {
	Base bool
	// File is the open base file (Base only); the sink reads it whole.
	File       *os.File
	Data       []byte
	Start, End backup.AOFPos
	// FirstAt and LastAt are the seconds of its first and last command.
	FirstAt, LastAt time.Time
	SourceNode      string
}

// Sink stores a segment; an error stops Run (the segment is offered again
// after a restart from the last stored one).
type Sink func(ctx context.Context, s Segment) error

// Resume is where the last stored segment ended.
type Resume struct {
	// End is its EndPos ("" when nothing is archived).
	End string
	// LastAt is its LastAt: the second of commands before the first
	// annotation read after resuming.
	LastAt time.Time
}

// Config tunes an Archiver.
type Config struct {
	// PollEvery is how often the AOF is read (default 500ms).
	PollEvery time.Duration
	// NewChain names a new chain (a ULID in production).
	NewChain func() string
	Log      *slog.Logger
}

// Stats is what the lag measurement reads.
type Stats struct {
	// Connected: the archiver reads a primary's AOF.
	Connected bool
	// PendingSince is when the oldest bytes read but not yet stored were
	// seen (zero: none).
	PendingSince time.Time
	// Committed is the last stored position.
	Committed string
}

// Errors Run returns.
var (
	// ErrNotPrimary: the node is no longer the primary (a failover): the
	// caller runs again, and Locate finds the new one.
	ErrNotPrimary = errors.New("node is no longer the primary")
	// ErrNoAOF: the node runs without appendonly; only snapshots apply.
	ErrNoAOF = errors.New("appendonly is off: no point-in-time archive")
)

// Archiver archives one instance's AOF.
type Archiver struct {
	cfg Config

	mu    sync.Mutex
	stats Stats
}

// New returns an Archiver.
func New(cfg Config) *Archiver {
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Archiver{cfg: cfg}
}

// Stats returns the archiver's current state.
func (a *Archiver) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

func (a *Archiver) setStats(f func(*Stats)) {
	a.mu.Lock()
	f(&a.stats)
	a.mu.Unlock()
}

// manifest is a parsed AOF manifest: the base and the incr files in order.
type manifest struct {
	base  string
	incrs []string
}

// layout is where a node keeps its AOF.
type layout struct {
	dir, manifestName string
}

// tail is the incr file being read.
type tail struct {
	f      *os.File
	pos    backup.AOFPos
	lastTS time.Time
}

// Run archives src's AOF until ctx ends or something stops it: the node
// no longer primary (ErrNotPrimary), AOF off (ErrNoAOF), a read or sink
// error. It continues the chain resume ended in when the node's files
// still hold it, else it starts a new chain from the current base.
func (a *Archiver) Run(ctx context.Context, locate Locate, resume Resume, sink Sink) error {
	defer a.setStats(func(s *Stats) { s.Connected, s.PendingSince = false, time.Time{} })
	src, err := locate(ctx)
	if err != nil {
		return err
	}
	c := goredis.NewClient(&goredis.Options{Addr: src.Address, Username: src.User, Password: src.Password,
		DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, PoolSize: 1, DisableIdentity: true})
	defer c.Close()
	lay, err := a.attach(ctx, c, src)
	if err != nil {
		return fmt.Errorf("aof of %s: %w", src.Address, err)
	}
	var t *tail
	defer func() {
		if t != nil {
			t.f.Close()
		}
	}()
	m, err := readManifest(lay)
	if err != nil {
		return err
	}
	if t, err = a.resume(lay, m, src, resume); err != nil {
		return err
	}
	tick := time.NewTicker(a.cfg.PollEvery)
	defer tick.Stop()
	for {
		if err := isPrimary(ctx, c); err != nil {
			return fmt.Errorf("aof of %s: %w", src.Address, err)
		}
		m, err := readManifest(lay)
		if err != nil {
			return err
		}
		if t != nil {
			// Read what was appended; when the manifest moved on from the
			// file (a rewrite started: a new incr file), the old one is
			// complete.
			if err := a.drain(ctx, t, sink, src); err != nil {
				return err
			}
			switch {
			case m.base != t.pos.Base || baseStamp(lay, m.base) != t.pos.BaseStamp:
				// A rewrite finished: a new base holds everything before
				// the incr files after it.
				t.f.Close()
				t = nil
			case next(m, t.pos.File) != "":
				name := next(m, t.pos.File)
				f, err := os.Open(filepath.Join(lay.dir, name))
				if err != nil {
					return fmt.Errorf("open aof %s: %w", name, err)
				}
				t.f.Close()
				pos := t.pos
				pos.File, pos.Offset = name, 0
				t = &tail{f: f, pos: pos, lastTS: t.lastTS}
			}
		}
		if t == nil {
			if t, err = a.newChain(ctx, c, lay, src, sink); err != nil {
				return err
			}
		}
		a.setStats(func(s *Stats) {
			if s.Connected = t != nil; t != nil {
				s.Committed = t.pos.String()
			}
		})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// attach checks the node keeps an AOF with timestamps (turning the
// annotations on when a node made before they were the default lacks
// them) and finds its files.
func (a *Archiver) attach(ctx context.Context, c *goredis.Client, src Source) (layout, error) {
	if err := isPrimary(ctx, c); err != nil {
		return layout{}, err
	}
	conf := func(name, def string) string {
		m, err := c.ConfigGet(ctx, name).Result()
		if err != nil || m[name] == "" {
			return def
		}
		return m[name]
	}
	if conf("appendonly", "no") != "yes" {
		return layout{}, ErrNoAOF
	}
	if conf("aof-timestamp-enabled", "no") != "yes" {
		if err := c.ConfigSet(ctx, "aof-timestamp-enabled", "yes").Err(); err != nil {
			return layout{}, fmt.Errorf("turn on aof-timestamp-enabled: %w", err)
		}
		a.cfg.Log.WarnContext(ctx, "aof timestamps were off on the node; turned on", slog.String("node", src.NodeID))
	}
	dir := conf("dir", src.DataDir)
	if dir == "" {
		return layout{}, errors.New("aof location unknown: CONFIG GET dir refused and no data dir given")
	}
	return layout{dir: filepath.Join(dir, conf("appenddirname", "appendonlydir")),
		manifestName: conf("appendfilename", "appendonly.aof") + ".manifest"}, nil
}

// isPrimary returns ErrNotPrimary unless the node is a master.
func isPrimary(ctx context.Context, c *goredis.Client) error {
	r, err := info(ctx, c, "replication")
	if err != nil {
		return err
	}
	if r["role"] != "master" {
		return ErrNotPrimary
	}
	return nil
}

// info returns an INFO section as field → value.
func info(ctx context.Context, c *goredis.Client, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("info %s: %w", section, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out, nil
}

// readManifest reads the node's AOF manifest ("file <name> seq <n> type
// <b|h|i>" lines; h, history, is on its way out and not loaded).
func readManifest(l layout) (manifest, error) {
	f, err := os.Open(filepath.Join(l.dir, l.manifestName))
	if err != nil {
		return manifest{}, fmt.Errorf("read aof manifest: %w", err)
	}
	defer f.Close()
	var m manifest
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		kv := map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			kv[fields[i]] = fields[i+1]
		}
		switch kv["type"] {
		case "b":
			m.base = kv["file"]
		case "i":
			m.incrs = append(m.incrs, kv["file"])
		}
	}
	if err := sc.Err(); err != nil {
		return manifest{}, fmt.Errorf("read aof manifest: %w", err)
	}
	if m.base == "" || len(m.incrs) == 0 {
		return manifest{}, fmt.Errorf("aof manifest %s: %w: want a base and an incr file", l.manifestName, ErrCorrupt)
	}
	return m, nil
}

// next is the incr file after name in m ("" when name is the last, or
// no longer listed).
func next(m manifest, name string) string {
	for i, f := range m.incrs {
		if f == name && i+1 < len(m.incrs) {
			return m.incrs[i+1]
		}
	}
	return ""
}

// baseStamp is the base file's modification time (0: unreadable).
func baseStamp(l layout, base string) int64 {
	fi, err := os.Stat(filepath.Join(l.dir, base))
	if err != nil {
		return 0
	}
	return fi.ModTime().UnixNano()
}

// resume reopens the incr file resume ended in, when the node's files
// still continue that chain; nil when they do not.
func (a *Archiver) resume(l layout, m manifest, src Source, r Resume) (*tail, error) {
	if r.End == "" {
		return nil, nil
	}
	pos, err := backup.ParseAOFPos(r.End)
	if err != nil || pos.Node != src.NodeID || pos.Base != m.base || pos.BaseStamp != baseStamp(l, m.base) {
		return nil, nil
	}
	listed := false
	for _, f := range m.incrs {
		listed = listed || f == pos.File
	}
	if !listed {
		return nil, nil
	}
	f, err := os.Open(filepath.Join(l.dir, pos.File))
	if err != nil {
		return nil, nil
	}
	if fi, err := f.Stat(); err != nil || fi.Size() < pos.Offset {
		f.Close()
		return nil, nil
	}
	return &tail{f: f, pos: pos, lastTS: r.LastAt}, nil
}

// newChain stores the manifest's base as a new chain's first segment and
// opens its first incr file; nil (and no error) while a rewrite is under
// way. A chain never starts then: after a full sync a replica (or a
// primary promoted from one) keeps its pre-sync manifest until the
// rewrite that follows the sync ends, and those files lack the data set.
func (a *Archiver) newChain(ctx context.Context, c *goredis.Client, l layout, src Source, sink Sink) (*tail, error) {
	p, err := info(ctx, c, "persistence")
	if err != nil {
		return nil, err
	}
	if p["aof_rewrite_in_progress"] != "0" || p["aof_rewrite_scheduled"] != "0" {
		return nil, nil
	}
	m, err := readManifest(l)
	if err != nil {
		return nil, err
	}
	base, err := os.Open(filepath.Join(l.dir, m.base))
	if err != nil {
		return nil, fmt.Errorf("open aof base %s: %w", m.base, err)
	}
	defer base.Close()
	// Opened before the base is stored: a rewrite finishing meanwhile
	// deletes the file, and the open descriptor still reads it.
	incr, err := os.Open(filepath.Join(l.dir, m.incrs[0]))
	if err != nil {
		return nil, fmt.Errorf("open aof %s: %w", m.incrs[0], err)
	}
	fi, err := base.Stat()
	if err != nil {
		incr.Close()
		return nil, fmt.Errorf("stat aof base %s: %w", m.base, err)
	}
	// The base holds the data as of its rewrite's start, at or before the
	// file was written: from that second on, base + incr reach any second.
	at := fi.ModTime().UTC().Truncate(time.Second)
	start := backup.AOFPos{Chain: a.cfg.NewChain(), Node: src.NodeID, Base: m.base, BaseStamp: fi.ModTime().UnixNano()}
	end := start
	end.File = m.incrs[0]
	if err := sink(ctx, Segment{Base: true, File: base, Start: start, End: end, FirstAt: at, LastAt: at, SourceNode: src.NodeID}); err != nil {
		incr.Close()
		return nil, fmt.Errorf("store aof base %s: %w", m.base, err)
	}
	a.cfg.Log.InfoContext(ctx, "aof chain started", slog.String("chain", start.Chain), slog.String("node", src.NodeID),
		slog.String("base", m.base), slog.Time("base_at", at))
	a.setStats(func(s *Stats) { s.Committed = end.String() })
	return &tail{f: incr, pos: end, lastTS: at}, nil
}

// drain stores the complete commands appended to t's file since its
// offset, if any.
func (a *Archiver) drain(ctx context.Context, t *tail, sink Sink, src Source) error {
	fi, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("stat aof %s: %w", t.pos.File, err)
	}
	if fi.Size() <= t.pos.Offset {
		return nil
	}
	seen := time.Now()
	a.setStats(func(s *Stats) {
		if s.PendingSince.IsZero() {
			s.PendingSince = seen
		}
	})
	buf := make([]byte, fi.Size()-t.pos.Offset)
	n, err := t.f.ReadAt(buf, t.pos.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read aof %s: %w", t.pos.File, err)
	}
	sc, err := scan(buf[:n])
	if err != nil {
		return fmt.Errorf("aof %s from byte %d: %w", t.pos.File, t.pos.Offset, err)
	}
	if sc.n == 0 {
		return nil // a command still being written
	}
	first, last := t.lastTS, t.lastTS
	if sc.startsWithTS {
		first = time.Unix(sc.first, 0).UTC()
	}
	if sc.last != 0 {
		last = time.Unix(sc.last, 0).UTC()
	}
	end := t.pos
	end.Offset += int64(sc.n)
	if err := sink(ctx, Segment{Data: buf[:sc.n], Start: t.pos, End: end, FirstAt: first, LastAt: last, SourceNode: src.NodeID}); err != nil {
		return fmt.Errorf("store aof %s bytes %d..%d: %w", t.pos.File, t.pos.Offset, end.Offset, err)
	}
	t.pos, t.lastTS = end, last
	a.setStats(func(s *Stats) { s.PendingSince, s.Committed = time.Time{}, end.String() })
	return nil
}
