package aofarchive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Seed file names: a restore seed's AOF is dir/aof/base.rdb (or base.aof
// when the node wrote its base as commands) and dir/aof/incr.aof; the
// provisioning driver names them as the new node's multi-part AOF.
const (
	SeedDir  = "aof"
	SeedIncr = "incr.aof"
)

// SeedBaseName is the seed's name for a base file named base on its node.
func SeedBaseName(base string) string {
	if strings.HasSuffix(base, ".aof") {
		return "base.aof"
	}
	return "base.rdb"
}

// BuildSeed makes dir/aof from a chain's base file (named base on its
// node) and its incr pieces, in order: the pieces are joined into one
// incr file, then cut before stopBefore's second by checkAOF
// (redis-check-aof --truncate-to-timestamp, which also refuses a
// malformed file). The pieces are removed once joined.
func BuildSeed(ctx context.Context, checkAOF, dir, baseFile, base string, pieces []string, stopBefore time.Time) error {
	if checkAOF == "" {
		checkAOF = "redis-check-aof"
	}
	out := filepath.Join(dir, SeedDir)
	if err := os.MkdirAll(out, 0o700); err != nil {
		return fmt.Errorf("make aof seed dir: %w", err)
	}
	if err := os.Rename(baseFile, filepath.Join(out, SeedBaseName(base))); err != nil {
		return fmt.Errorf("place aof base: %w", err)
	}
	incr := filepath.Join(out, SeedIncr)
	f, err := os.OpenFile(incr, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create incr aof: %w", err)
	}
	var size int64
	for _, p := range pieces {
		n, err := appendFile(f, p)
		size += n
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write incr aof: %w", err)
	}
	for _, p := range pieces {
		os.Remove(p)
	}
	if size == 0 || stopBefore.IsZero() {
		return nil
	}
	ts := stopBefore.Add(-time.Second).Unix()
	cmd := exec.CommandContext(ctx, checkAOF, "--truncate-to-timestamp", strconv.FormatInt(ts, 10), incr)
	msg, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%s not found: install Debian's redis-tools (scripts/ensure-deps.sh does): %w", checkAOF, err)
	}
	if err != nil {
		return fmt.Errorf("cut aof at %s: %s: %w", stopBefore.Add(-time.Second).UTC().Format(time.RFC3339),
			strings.TrimSpace(string(msg)), err)
	}
	return nil
}

func appendFile(w io.Writer, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read aof piece: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return n, fmt.Errorf("join aof piece %s: %w", filepath.Base(path), err)
	}
	return n, nil
}
