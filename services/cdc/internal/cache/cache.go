// Package cache is a sync job's Redis target: it keeps each source row as
// a Redis hash or JSON string under a key made from a pattern and the row's
// primary key, and keeps the job's watermark in the same Redis, written in
// the same MULTI/EXEC as the rows it covers, so a restart resumes exactly
// where the cache is. It implements syncjob.Applier; it does not read
// binlogs (capture does) nor decide what to apply (syncrun does).
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
	"github.com/canopy-platform/canopy/services/cdc/internal/syncjob"
)

const defaultPattern = syncjob.DefaultKeyPattern

// watermarkPrefix starts every watermark key; rows must not be keyed there.
const watermarkPrefix = "canopy:sync:"

// DefaultMaxBuffered is Config.MaxBuffered when 0.
const DefaultMaxBuffered = 50000

// Fields of the watermark hash.
const (
	fieldPosition = "position"
	fieldLoad     = "load"
	fieldApplied  = "applied"
)

// Config says which Redis to write and how.
type Config struct {
	// JobID names the watermark key; Tenant is for the logs.
	JobID, Tenant string
	// From is the source instance id; it names the watermark key.
	From string
	// Addr, Username and Password reach the Redis primary (the instance's
	// admin account).
	Addr, Username, Password string
	// KeyPattern names a row's key: {db}, {table}, {pk} (default
	// syncjob.DefaultKeyPattern). It must hold {pk}, or rows would
	// overwrite each other.
	KeyPattern string
	// Format is hash (default) or json.
	Format syncjob.Format
	// TTL expires every written key (0: never).
	TTL time.Duration
	// MaxBuffered bounds the rows kept for a checkpoint (default 50000):
	// the rows of a larger transaction are written ahead of it, without
	// the watermark. Readers then see such a transaction in parts, but
	// the result stays exactly-once: a crash before the checkpoint leaves
	// the old watermark, and redelivery rewrites those keys in order.
	MaxBuffered int
	// ColumnTypes, optional, returns the source's column data types
	// (information_schema.COLUMNS.DATA_TYPE by column name) of db.table;
	// ColumnTypesFrom reads them. With it an initial load's rows (all text)
	// are cached exactly as the binlog's typed rows of the same data are
	// (integers, FLOAT/DOUBLE text, BIT bytes; JSON numbers and base64);
	// without it load values are written as their text and JSON strings.
	ColumnTypes func(ctx context.Context, db, table string) (map[string]string, error)
	// Logger is optional (nil: no logs).
	Logger *slog.Logger
}

// Cache is one direction's Redis target. It is not safe for concurrent
// Apply calls: a direction applies its batches in order.
type Cache struct {
	cfg    Config
	rdb    *redis.Client
	log    *slog.Logger
	wmKey  string
	kinds  map[string][]kind // by "db.table", with the columns they were read for
	kcols  map[string][]string
	buffer []change.Message // rows of batches without a checkpoint
	ahead  syncjob.Stats    // rows written ahead of their checkpoint (MaxBuffered)
}

var _ syncjob.Applier = (*Cache)(nil)

// Open checks cfg and connects to the Redis.
func Open(ctx context.Context, cfg Config) (*Cache, error) {
	if cfg.JobID == "" || cfg.From == "" || cfg.Addr == "" {
		return nil, errors.New("cache: job id, source instance and address are required")
	}
	if cfg.KeyPattern == "" {
		cfg.KeyPattern = defaultPattern
	}
	if !strings.Contains(cfg.KeyPattern, "{pk}") {
		return nil, fmt.Errorf("cache: key pattern %q has no {pk}", cfg.KeyPattern)
	}
	if strings.HasPrefix(cfg.KeyPattern, watermarkPrefix) {
		return nil, fmt.Errorf("cache: key pattern %q is in the watermarks' namespace %s", cfg.KeyPattern, watermarkPrefix)
	}
	switch cfg.Format {
	case "":
		cfg.Format = syncjob.FormatHash
	case syncjob.FormatHash, syncjob.FormatJSON:
	default:
		return nil, fmt.Errorf("cache: unknown format %q", cfg.Format)
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = DefaultMaxBuffered
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("cache: negative ttl %s", cfg.TTL)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password,
		DisableIdentity: true})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("cache: connect to %s: %w", cfg.Addr, err)
	}
	return &Cache{
		cfg:   cfg,
		rdb:   rdb,
		log:   log.With("job_id", cfg.JobID, "tenant", cfg.Tenant, "from", cfg.From, "redis", cfg.Addr),
		wmKey: WatermarkKey(cfg.JobID, cfg.From),
		kinds: map[string][]kind{},
		kcols: map[string][]string{},
	}, nil
}

// WatermarkKey is the hash holding the watermark of job's direction from
// the instance from.
func WatermarkKey(job, from string) string { return watermarkPrefix + job + ":" + from }

// Watermark reads the watermark hash; the zero Watermark when there is none.
func (c *Cache) Watermark(ctx context.Context) (syncjob.Watermark, error) {
	m, err := c.rdb.HGetAll(ctx, c.wmKey).Result()
	if err != nil {
		return syncjob.Watermark{}, fmt.Errorf("read watermark %s from %s: %w", c.wmKey, c.cfg.Addr, err)
	}
	w := syncjob.Watermark{Position: m[fieldPosition]}
	if l, ok := m[fieldLoad]; ok && l != "" {
		w.Load = []byte(l)
	}
	if a, ok := m[fieldApplied]; ok {
		if w.Applied, err = strconv.ParseInt(a, 10, 64); err != nil {
			return syncjob.Watermark{}, fmt.Errorf("watermark %s: applied %q: %w", c.wmKey, a, err)
		}
	}
	return w, nil
}

// Apply writes b's rows. A batch without a checkpoint is only kept until a
// batch with one arrives (or MaxBuffered rows are kept); then all kept
// rows, b's rows and the watermark are written in one MULTI/EXEC, so Redis
// holds either all of them or none (a crash in between leaves the old
// watermark, and redelivery rewrites the same keys). After an error the
// kept rows are dropped: the caller resumes from Watermark.
func (c *Cache) Apply(ctx context.Context, b change.Batch) (syncjob.Stats, error) {
	for _, m := range b.Messages {
		switch {
		case m.Change != nil:
			c.buffer = append(c.buffer, m)
		case m.Schema != nil:
			// The rows that follow carry the new columns; only the
			// column types read for the old ones are stale.
			name := m.Schema.DB + "." + m.Schema.Table
			delete(c.kinds, name)
			delete(c.kcols, name)
			c.log.Info("schema change; rows keep their cached shape until rewritten",
				"db", m.Schema.DB, "table", m.Schema.Table, "statement", m.Schema.Statement)
		}
	}
	if b.Checkpoint == nil && len(c.buffer) < c.cfg.MaxBuffered {
		return syncjob.Stats{}, nil
	}
	rows, ahead := c.buffer, c.ahead
	c.buffer, c.ahead = nil, syncjob.Stats{}
	st, err := c.commit(ctx, rows, b.Checkpoint, ahead)
	if err != nil {
		return syncjob.Stats{}, fmt.Errorf("apply batch to %s: %w", c.cfg.Addr, err)
	}
	if b.Checkpoint == nil {
		c.ahead = st
		return syncjob.Stats{}, nil
	}
	return st, nil
}

// command is one Redis command of a commit, built before MULTI so that an
// encoding error leaves Redis untouched.
type command []any

// commit writes rows and, with cp, the watermark in one MULTI/EXEC. Its
// stats add rows to ahead (rows written earlier in cp's transaction); the
// watermark's applied count grows by them all.
func (c *Cache) commit(ctx context.Context, rows []change.Message, cp *change.Checkpoint, ahead syncjob.Stats) (syncjob.Stats, error) {
	st := syncjob.Stats{Applied: ahead.Applied, Tables: map[string]int64{}}
	for t, n := range ahead.Tables {
		st.Tables[t] = n
	}
	var cmds []command
	for _, m := range rows {
		rc := m.Change
		cs, err := c.commands(ctx, rc)
		if err != nil {
			return syncjob.Stats{}, fmt.Errorf("%s.%s gtid %s row %d: %w", rc.DB, rc.Table, m.GTID, m.Row, err)
		}
		cmds = append(cmds, cs...)
		st.Applied++
		st.Tables[rc.DB+"."+rc.Table]++
	}
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, cmd := range cmds {
			p.Do(ctx, cmd...)
		}
		if cp == nil {
			return nil
		}
		p.HSet(ctx, c.wmKey, fieldPosition, cp.GTID)
		if cp.Snapshot != nil {
			p.HSet(ctx, c.wmKey, fieldLoad, cp.Snapshot)
		} else {
			p.HDel(ctx, c.wmKey, fieldLoad)
		}
		p.HIncrBy(ctx, c.wmKey, fieldApplied, st.Applied)
		return nil
	})
	if err != nil {
		if cp == nil {
			return syncjob.Stats{}, fmt.Errorf("write %d rows ahead of their checkpoint: %w", len(rows), err)
		}
		return syncjob.Stats{}, fmt.Errorf("commit %d rows and watermark %q: %w", len(rows), cp.GTID, err)
	}
	return st, nil
}

// commands are the writes of one row change: a delete removes the Before
// key; an insert, snapshot read or update replaces the After key (and an
// update that changed the primary key removes the Before key first).
func (c *Cache) commands(ctx context.Context, rc *change.RowChange) ([]command, error) {
	var kinds []kind
	if c.cfg.ColumnTypes != nil {
		var err error
		if kinds, err = c.columnKinds(ctx, rc); err != nil {
			return nil, err
		}
	}
	var cmds []command
	switch rc.Op {
	case "d":
		old, err := Key(c.cfg.KeyPattern, *rc, rc.Before)
		if err != nil {
			return nil, err
		}
		return append(cmds, command{"del", old}), nil
	case "u":
		if rc.Before != nil {
			old, err := Key(c.cfg.KeyPattern, *rc, rc.Before)
			if err != nil {
				return nil, err
			}
			cmds = append(cmds, command{"del", old})
		}
	case "c":
	case "r":
		// A snapshot read is written like an insert (an upsert: the whole
		// key is replaced).
		rc2 := *rc
		rc2.After = normalize(rc.After, kinds)
		rc = &rc2
	default:
		return nil, fmt.Errorf("unknown op %q", rc.Op)
	}
	if rc.After == nil {
		return nil, fmt.Errorf("op %q without an after image", rc.Op)
	}
	key, err := Key(c.cfg.KeyPattern, *rc, rc.After)
	if err != nil {
		return nil, err
	}
	if c.cfg.Format == syncjob.FormatJSON {
		val, err := jsonRow(rc, rc.After, kinds)
		if err != nil {
			return nil, err
		}
		if c.cfg.TTL > 0 {
			return append(cmds, command{"set", key, val, "px", c.cfg.TTL.Milliseconds()}), nil
		}
		return append(cmds, command{"set", key, val}), nil
	}
	fields, err := hashFields(rc, rc.After)
	if err != nil {
		return nil, err
	}
	// DEL first: a column that became NULL must not keep its old field.
	cmds = append(cmds, command{"del", key})
	if len(fields) > 0 {
		cmds = append(cmds, append(command{"hset", key}, fields...))
	}
	if c.cfg.TTL > 0 {
		cmds = append(cmds, command{"pexpire", key, c.cfg.TTL.Milliseconds()})
	}
	return cmds, nil
}

// columnKinds are rc's columns' kinds, read once per table (and again when
// the columns change).
func (c *Cache) columnKinds(ctx context.Context, rc *change.RowChange) ([]kind, error) {
	name := rc.DB + "." + rc.Table
	if k, ok := c.kinds[name]; ok && slices.Equal(c.kcols[name], rc.Columns) {
		return k, nil
	}
	types, err := c.cfg.ColumnTypes(ctx, rc.DB, rc.Table)
	if err != nil {
		return nil, fmt.Errorf("column types of %s: %w", name, err)
	}
	k := make([]kind, len(rc.Columns))
	for i, col := range rc.Columns {
		k[i] = kindOf(types[col])
	}
	c.kinds[name] = k
	c.kcols[name] = append([]string(nil), rc.Columns...)
	return k, nil
}

// Drop removes this direction's watermark (the job was deleted). The
// cached rows stay: they are the user's data (and expire with a TTL).
func (c *Cache) Drop(ctx context.Context) error {
	c.buffer, c.ahead = nil, syncjob.Stats{}
	if err := c.rdb.Del(ctx, c.wmKey).Err(); err != nil {
		return fmt.Errorf("drop watermark %s on %s: %w", c.wmKey, c.cfg.Addr, err)
	}
	return nil
}

// Close drops rows not yet committed and closes the connections.
func (c *Cache) Close() error {
	c.buffer, c.ahead = nil, syncjob.Stats{}
	if err := c.rdb.Close(); err != nil {
		return fmt.Errorf("close redis %s: %w", c.cfg.Addr, err)
	}
	return nil
}
