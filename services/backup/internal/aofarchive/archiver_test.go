package aofarchive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/enginetest"
	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

const (
	adminUser     = "admin"
	adminPassword = "redis-secret-1"
)

// startRedis runs a redis-server keeping an AOF, its timestamps left off
// as on a node made before they were the default.
func startRedis(t *testing.T) (*enginetest.Proc, *goredis.Client) {
	t.Helper()
	p := enginetest.Redis(t, adminUser, adminPassword, "--appendonly", "yes")
	p.Start()
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr, Username: adminUser, Password: adminPassword, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return p, c
}

// store is a sink keeping segments as files, as the engine keeps objects.
type store struct {
	dir  string
	mu   sync.Mutex
	segs []backup.Segment
	seq  int64
}

func (s *store) sink(ctx context.Context, seg Segment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	file := filepath.Join(s.dir, fmt.Sprintf("%06d", s.seq))
	var r io.Reader
	if seg.Base {
		r = seg.File
	} else {
		r = bytes.NewReader(seg.Data)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.segs = append(s.segs, backup.Segment{Seq: s.seq, StartPos: seg.Start.String(), EndPos: seg.End.String(),
		FirstAt: seg.FirstAt, LastAt: seg.LastAt, SourceNode: seg.SourceNode, Object: backup.Object{Key: file}})
	return nil
}

// caughtUp reports whether the last segment is node's (running as p) and ends where p's
// current incr file does.
func (s *store) caughtUp(node string, p *enginetest.Proc) func() bool {
	return func() bool {
		segs := s.all()
		if len(segs) == 0 {
			return false
		}
		pos, err := backup.ParseAOFPos(segs[len(segs)-1].EndPos)
		if err != nil {
			return false
		}
		fi, err := os.Stat(filepath.Join(p.Dir, "appendonlydir", pos.File))
		return err == nil && fi.Size() == pos.Offset && pos.Offset > 0 && segs[len(segs)-1].SourceNode == node
	}
}

func (s *store) all() []backup.Segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]backup.Segment(nil), s.segs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextSecond waits until the wall clock is well into the second after
// the one t falls in, so writes before and after are annotated apart.
func nextSecond(t *testing.T, after time.Time) {
	t.Helper()
	boundary := after.Truncate(time.Second).Add(time.Second + 300*time.Millisecond)
	waitFor(t, "the next second", 3*time.Second, func() bool { return !time.Now().Before(boundary) })
}

func write(t *testing.T, c *goredis.Client, prefix string, n int) time.Time {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if err := c.Set(ctx, fmt.Sprintf("%s:%d", prefix, i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return time.Now()
}

// restoreAt plans a restore to second at from the archived segments,
// builds the seed and loads it into a fresh redis-server; it returns a
// client of that server.
func restoreAt(t *testing.T, segs []backup.Segment, at time.Time) *goredis.Client {
	t.Helper()
	plan, err := backup.PlanRestore(nil, segs, backup.Target{PointInTime: at})
	if err != nil {
		t.Fatalf("plan restore to %s: %v", at.Format(time.RFC3339), err)
	}
	work := t.TempDir()
	copyTo := func(src string) string {
		dst := filepath.Join(work, filepath.Base(src))
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	basePos, err := backup.ParseAOFPos(plan.Segments[0].StartPos)
	if err != nil {
		t.Fatal(err)
	}
	var pieces []string
	for _, s := range plan.Segments[1:] {
		pieces = append(pieces, copyTo(s.Object.Key))
	}
	seed := filepath.Join(work, "seed")
	if err := BuildSeed(context.Background(), "", seed, copyTo(plan.Segments[0].Object.Key), basePos.Base, pieces, plan.StopBefore); err != nil {
		t.Fatal(err)
	}
	// Laid out as the provisioning driver lays out a seed.
	p := enginetest.Redis(t, "", "", "--appendonly", "yes")
	aofDir := filepath.Join(p.Dir, "appendonlydir")
	if err := os.MkdirAll(aofDir, 0o700); err != nil {
		t.Fatal(err)
	}
	baseName := "appendonly.aof.1." + SeedBaseName(basePos.Base)
	for from, to := range map[string]string{SeedBaseName(basePos.Base): baseName, SeedIncr: "appendonly.aof.1.incr.aof"} {
		if err := os.Rename(filepath.Join(seed, SeedDir, from), filepath.Join(aofDir, to)); err != nil {
			t.Fatal(err)
		}
	}
	manifest := "file " + baseName + " seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
	if err := os.WriteFile(filepath.Join(aofDir, "appendonly.aof.manifest"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Start()
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	waitFor(t, "the restored server to load", 30*time.Second, func() bool {
		s, err := c.Info(context.Background(), "persistence").Result()
		return err == nil && !strings.Contains(s, "loading:1")
	})
	return c
}

func keys(t *testing.T, c *goredis.Client) int64 {
	t.Helper()
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Writes in known seconds, an AOF rewrite between them and a delete: a
// restore to a second holds exactly what was written by its end, from
// the chain of the base before the rewrite or after it.
func TestArchiveAndRestoreToTheSecond(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, c := startRedis(t)
	st := &store{dir: t.TempDir()}
	n := 0
	a := New(Config{PollEvery: 50 * time.Millisecond, NewChain: func() string { n++; return "c" + strconv.Itoa(n) }})
	locate := func(context.Context) (Source, error) {
		return Source{NodeID: "n1", Address: p.Addr, User: adminUser, Password: adminPassword, DataDir: p.Dir}, nil
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, locate, Resume{}, st.sink) }()
	waitFor(t, "the archiver to connect", 10*time.Second, func() bool { return a.Stats().Connected })
	if v, _ := c.ConfigGet(ctx, "aof-timestamp-enabled").Result(); v["aof-timestamp-enabled"] != "yes" {
		t.Fatalf("the archiver left aof-timestamp-enabled %q", v["aof-timestamp-enabled"])
	}
	archived := func(through time.Time) func() bool {
		return func() bool {
			segs := st.all()
			return len(segs) > 0 && !segs[len(segs)-1].LastAt.Before(through.Truncate(time.Second))
		}
	}

	endA := write(t, c, "a", 100)
	nextSecond(t, endA)
	atA := endA.Truncate(time.Second)

	if err := c.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second chain", 20*time.Second, func() bool {
		segs := st.all()
		return len(segs) > 0 && backup.IsAOFBase(segs[len(segs)-1]) && segs[len(segs)-1].Seq > 1
	})
	endB := write(t, c, "b", 50)
	if err := c.Del(ctx, "a:0").Err(); err != nil {
		t.Fatal(err)
	}
	endB = time.Now()
	nextSecond(t, endB)
	atB := endB.Truncate(time.Second)
	endC := write(t, c, "c", 30)
	waitFor(t, "the last writes archived", 10*time.Second, archived(endC))

	// Stopping mid-chain and running again continues the same chain.
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("archiver stopped with %v", err)
	}
	segs := st.all()
	last := segs[len(segs)-1]
	runCtx, stop = context.WithCancel(ctx)
	defer stop()
	go func() { done <- a.Run(runCtx, locate, Resume{End: last.EndPos, LastAt: last.LastAt}, st.sink) }()
	endD := write(t, c, "d", 10)
	waitFor(t, "writes after the restart archived", 10*time.Second, archived(endD))
	waitFor(t, "every byte archived", 10*time.Second, st.caughtUp("n1", p))
	segs = st.all()
	for _, s := range segs[1:] {
		if backup.IsAOFBase(s) && s.Seq > last.Seq {
			t.Fatalf("a restart started a new chain at segment %d", s.Seq)
		}
	}

	cA := restoreAt(t, segs, atA)
	if got := keys(t, cA); got != 100 {
		t.Fatalf("restore to %s (the first chain): %d keys, want 100", atA.Format(time.RFC3339), got)
	}
	cB := restoreAt(t, segs, atB)
	if got := keys(t, cB); got != 149 {
		t.Fatalf("restore to %s (after the rewrite): %d keys, want 149 (a:1..99, b:0..49)", atB.Format(time.RFC3339), got)
	}
	if v, err := cB.Exists(ctx, "a:0", "c:0").Result(); err != nil || v != 0 {
		t.Fatalf("restore to %s holds a:0 or c:0 (%d, %v)", atB.Format(time.RFC3339), v, err)
	}
	cD := restoreAt(t, segs, endD)
	if got := keys(t, cD); got != 189 {
		t.Fatalf("restore to the end: %d keys, want 189", got)
	}
}

// A node that is a replica is not archived.
func TestArchiveRefusesAReplica(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, c := startRedis(t)
	if err := c.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	a := New(Config{NewChain: func() string { return "c" }})
	err := a.Run(ctx, func(context.Context) (Source, error) {
		return Source{NodeID: "n1", Address: p.Addr, User: adminUser, Password: adminPassword}, nil
	}, Resume{}, func(context.Context, Segment) error { t.Fatal("a replica's AOF was archived"); return nil })
	if !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("archiving a replica: %v", err)
	}
}

// After a failover the archive follows the new primary with a chain of
// its own AOF (which holds what it replicated, annotated with seconds), so
// a second before the failover is still restorable, from either chain.
func TestArchiveFollowsAFailover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p1, c1 := startRedis(t)
	p2, c2 := startRedis(t)
	for _, c := range []*goredis.Client{c1, c2} {
		if err := c.ConfigSet(ctx, "aof-timestamp-enabled", "yes").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.ConfigSet(ctx, "masteruser", adminUser).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.ConfigSet(ctx, "masterauth", adminPassword).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c2.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(p1.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	primary := Source{NodeID: "n1", Address: p1.Addr, User: adminUser, Password: adminPassword, DataDir: p1.Dir}
	locate := func(context.Context) (Source, error) {
		mu.Lock()
		defer mu.Unlock()
		return primary, nil
	}
	st := &store{dir: t.TempDir()}
	n := 0
	a := New(Config{PollEvery: 50 * time.Millisecond, NewChain: func() string { n++; return "c" + strconv.Itoa(n) }})
	run := func() chan error {
		done := make(chan error, 1)
		segs := st.all()
		var r Resume
		if len(segs) > 0 {
			r = Resume{End: segs[len(segs)-1].EndPos, LastAt: segs[len(segs)-1].LastAt}
		}
		go func() { done <- a.Run(ctx, locate, r, st.sink) }()
		return done
	}
	done := run()
	endA := write(t, c1, "a", 100)
	waitFor(t, "the replica to catch up", 10*time.Second, func() bool { n, _ := c2.DBSize(ctx).Result(); return n == 100 })
	nextSecond(t, endA)
	atA := endA.Truncate(time.Second)

	// The failover: the replica is promoted, the old primary follows it.
	if err := c2.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Do(ctx, "REPLICAOF", "127.0.0.1", strconv.Itoa(p2.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	primary = Source{NodeID: "n2", Address: p2.Addr, User: adminUser, Password: adminPassword, DataDir: p2.Dir}
	mu.Unlock()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotPrimary) {
			t.Fatalf("archiver of the demoted primary stopped with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the archiver did not notice its node was demoted")
	}
	done = run()
	endB := write(t, c2, "b", 20)
	waitFor(t, "the new primary's writes archived", 10*time.Second, st.caughtUp("n2", p2))
	segs := st.all()
	// The second before the failover comes from the old primary's chain;
	// every chain of the new primary holds, from its first second, what
	// it had replicated (a chain never starts from a pre-sync manifest).
	if got := keys(t, restoreAt(t, segs, atA)); got != 100 {
		t.Fatalf("restore to %s: %d keys, want 100", atA.Format(time.RFC3339), got)
	}
	for _, s := range segs {
		if s.SourceNode == "n2" && backup.IsAOFBase(s) {
			var chain []backup.Segment
			for _, c := range segs {
				if c.Seq >= s.Seq {
					chain = append(chain, c)
				}
			}
			if got := keys(t, restoreAt(t, chain, s.FirstAt)); got < 100 {
				t.Fatalf("the new primary's chain from segment %d, restored at its start %s: %d keys, want at least 100",
					s.Seq, s.FirstAt.Format(time.RFC3339), got)
			}
		}
	}
	if got := keys(t, restoreAt(t, segs, endB)); got != 120 {
		t.Fatalf("restore to the end: %d keys, want 120", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("archiver stopped with %v", err)
	}
}
