// Package redissnap takes and checks Redis RDB snapshots on a node's host:
// BGSAVE (on a replica when there is one), waiting for it to finish, and
// the dump file read from the node's directory; and a scratch
// redis-server that loads a snapshot to count its keys. It neither stores
// nor schedules snapshots: the engine does.
package redissnap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Source is the node a snapshot is taken from.
type Source struct {
	Address  string
	DataDir  string
	User     string
	Password string
}

// Result is what a snapshot reported.
type Result struct {
	// Offset is master_repl_offset when the snapshot finished.
	Offset    int64
	DataBytes int64
	// ConsistentAt is the save's LASTSAVE.
	ConsistentAt time.Time
	// Keys is the node's key count (every database) right after the save:
	// the snapshot's own count is what Inspect measures.
	Keys int64
}

// ErrSaveFailed: Redis reported the background save failed.
var ErrSaveFailed = errors.New("redis background save failed")

// saveTimeout bounds one background save (a fork and a write of the data
// set).
const saveTimeout = 30 * time.Minute

// Snapshot runs BGSAVE on src, waits for it (a BGSAVE already in progress
// is waited for and followed by ours) and copies the RDB file into w.
func Snapshot(ctx context.Context, src Source, w io.Writer) (Result, error) {
	c := goredis.NewClient(&goredis.Options{Addr: src.Address, Username: src.User, Password: src.Password,
		DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, PoolSize: 2, DisableIdentity: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	if err := bgsave(ctx, c); err != nil {
		return Result{}, fmt.Errorf("snapshot %s: %w", src.Address, err)
	}
	var res Result
	last, err := c.LastSave(ctx).Result()
	if err != nil {
		return Result{}, fmt.Errorf("snapshot %s: lastsave: %w", src.Address, err)
	}
	res.ConsistentAt = time.Unix(last, 0).UTC()
	repl, err := info(ctx, c, "replication")
	if err != nil {
		return Result{}, fmt.Errorf("snapshot %s: %w", src.Address, err)
	}
	res.Offset, _ = strconv.ParseInt(repl["master_repl_offset"], 10, 64)
	if res.Keys, err = keyCount(ctx, c); err != nil {
		return Result{}, fmt.Errorf("snapshot %s: %w", src.Address, err)
	}
	path, err := rdbPath(ctx, c, src.DataDir)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot %s: %w", src.Address, err)
	}
	// The file is opened once: a later save renames a new file over the
	// name, and the open one stays this save's.
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot %s: open rdb: %w", src.Address, err)
	}
	defer f.Close()
	if res.DataBytes, err = io.Copy(w, f); err != nil {
		return Result{}, fmt.Errorf("snapshot %s: copy %s: %w", src.Address, path, err)
	}
	return res, nil
}

// bgsave starts a background save and waits until it is done; a save
// already running (someone else's, whose data may predate the call) or an
// AOF rewrite is waited for first.
func bgsave(ctx context.Context, c *goredis.Client) error {
	for {
		err := c.BgSave(ctx).Err()
		if err == nil {
			break
		}
		msg := strings.ToLower(err.Error())
		if !strings.Contains(msg, "in progress") {
			return fmt.Errorf("bgsave: %w", err)
		}
		if err := waitIdle(ctx, c); err != nil {
			return err
		}
	}
	if err := waitIdle(ctx, c); err != nil {
		return err
	}
	p, err := info(ctx, c, "persistence")
	if err != nil {
		return err
	}
	if p["rdb_last_bgsave_status"] != "ok" {
		return fmt.Errorf("%w: rdb_last_bgsave_status %s", ErrSaveFailed, p["rdb_last_bgsave_status"])
	}
	return nil
}

// waitIdle waits until no background save or AOF rewrite runs.
func waitIdle(ctx context.Context, c *goredis.Client) error {
	for {
		p, err := info(ctx, c, "persistence")
		if err != nil {
			return err
		}
		if p["rdb_bgsave_in_progress"] == "0" && p["aof_rewrite_in_progress"] != "1" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for background save: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// info returns an INFO section as field → value.
func info(ctx context.Context, c goredis.Cmdable, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("info %s: %w", section, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out, nil
}

// keyCount sums the keys of every database (INFO keyspace:
// "db0:keys=12,expires=0,avg_ttl=0").
func keyCount(ctx context.Context, c goredis.Cmdable) (int64, error) {
	ks, err := info(ctx, c, "keyspace")
	if err != nil {
		return 0, err
	}
	var n int64
	for k, v := range ks {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if name, val, ok := strings.Cut(kv, "="); ok && name == "keys" {
				x, err := strconv.ParseInt(val, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("keyspace %s: %w", k, err)
				}
				n += x
			}
		}
	}
	return n, nil
}

// rdbPath is where the node writes its RDB: CONFIG GET dir and dbfilename,
// or dump.rdb in the node's data dir when CONFIG is not allowed.
func rdbPath(ctx context.Context, c *goredis.Client, dataDir string) (string, error) {
	dir, name := dataDir, "dump.rdb"
	if m, err := c.ConfigGet(ctx, "dir").Result(); err == nil && m["dir"] != "" {
		dir = m["dir"]
	}
	if m, err := c.ConfigGet(ctx, "dbfilename").Result(); err == nil && m["dbfilename"] != "" {
		name = m["dbfilename"]
	}
	if dir == "" {
		return "", errors.New("rdb location unknown: CONFIG GET dir failed and no data dir given")
	}
	return filepath.Join(dir, name), nil
}
