package binlogarchive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/backup/internal/binlogarchive"
)

const schema = "CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL)"

// Every transaction written while archiving lands in exactly one segment,
// segments chain, each decodes with mariadb-binlog, and replaying them on
// an empty server with the schema rebuilds the same rows. A failing sink
// gets the same segment again.
func TestArchiveSegments(t *testing.T) {
	t.Parallel()
	p, target := newNode(t, "p", 1), newNode(t, "target", 3)
	startNodes(t, p, target)
	for _, n := range []*node{p, target} {
		n.exec(t, "SET SESSION sql_log_bin=0", "CREATE DATABASE app", schema)
	}
	p.exec(t, "INSERT INTO app.t VALUES (0, 'before the archive')")
	start := p.pos(t)
	target.exec(t, "SET SESSION sql_log_bin=0", "INSERT INTO app.t VALUES (0, 'before the archive')")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	// Small segments, so that size and time both cut; sink calls 2 and 3
	// fail.
	cfg := binlogarchive.Config{ServerID: 9001, FlushEvery: 200 * time.Millisecond, MaxBytes: 4 << 10,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	ar := startArchive(t, ctx, cfg, func(context.Context) (binlogarchive.Source, error) { return p.source(), nil }, start, 2, 3)

	const n = 300
	for i := 1; i <= n; i++ {
		p.exec(t, fmt.Sprintf("INSERT INTO app.t (id, v) VALUES (%d, 'row %d')", i, i))
		switch i {
		case 100:
			// A standalone DDL transaction and a multi-statement one.
			p.exec(t, "ALTER TABLE app.t ADD COLUMN w INT NULL",
				"BEGIN", "UPDATE app.t SET v = CONCAT(v, ' updated'), w = 1 WHERE id <= 10", "DELETE FROM app.t WHERE id = 5", "COMMIT")
		case 150:
			deadline := time.Now().Add(10 * time.Second)
			// Segments are stored while the writes go on.
			for !ar.a.Stats().Connected || ar.a.Stats().Committed == start {
				if time.Now().After(deadline) {
					t.Fatalf("archiver not connected or idle: %+v", ar.a.Stats())
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	end := p.pos(t)
	ar.waitCommitted(t, end)
	st := ar.a.Stats()
	if !st.Connected || !st.PendingSince.IsZero() || st.CommittedAt.IsZero() || time.Since(st.CommittedAt) > time.Minute {
		t.Errorf("stats after catching up = %+v", st)
	}
	ar.stop(t, cancel)

	segs, files := ar.stored()
	checkArchive(t, segs, files, start, end)
	if len(segs) < 3 {
		t.Errorf("%d segments, want several (4 KiB / 200ms cuts)", len(segs))
	}
	ar.mu.Lock()
	att := ar.attempts
	ar.mu.Unlock()
	if len(att) < 3 || !bytes.Equal(att[1].Data, att[2].Data) || !bytes.Equal(att[1].Data, segs[1].Data) || att[1].EndPos != segs[1].EndPos {
		t.Errorf("the failed segment was not retried as it was")
	}
	for _, s := range segs {
		if s.SourceNode != "p" {
			t.Errorf("segment %s..%s from %q, want p", s.StartPos, s.EndPos, s.SourceNode)
		}
	}

	// A restore replays a GTID range across segment files.
	from, to := seqOf(t, start)+50, seqOf(t, start)+120
	args := append([]string{"--no-defaults", fmt.Sprintf("--start-position=0-1-%d", from), fmt.Sprintf("--stop-position=0-1-%d", to)}, files...)
	out, err := exec.Command("mariadb-binlog", args...).Output()
	if err != nil {
		t.Fatalf("mariadb-binlog of a GTID range: %v", err)
	}
	var want []string
	for s := from + 1; s <= to; s++ {
		want = append(want, fmt.Sprintf("0-1-%d", s))
	}
	if got := gtids(string(out)); !slices.Equal(got, want) {
		t.Errorf("mariadb-binlog from 0-1-%d to 0-1-%d shows %v", from, to, got)
	}

	apply(t, target, files)
	if got, want := target.rows(t, "app.t"), p.rows(t, "app.t"); !slices.Equal(got, want) {
		t.Fatalf("replayed rows differ: %d rows, want %d", len(got), len(want))
	}
	if got := target.pos(t); got != end {
		t.Errorf("replayed server's gtid_binlog_pos = %q, want %q", got, end)
	}
}

// A failover moves the primary: the archive continues on the promoted
// replica from its last committed position, with every transaction once.
func TestArchiveFollowsFailover(t *testing.T) {
	t.Parallel()
	p, r, target := newNode(t, "p", 1), newNode(t, "r", 2), newNode(t, "target", 3)
	startNodes(t, p, r, target)
	r.exec(t, "SET GLOBAL read_only=ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
			p.p.Port, adminUser, adminPassword),
		"START SLAVE")
	p.exec(t, "CREATE DATABASE app", schema)
	start := p.pos(t)
	target.exec(t, "SET SESSION sql_log_bin=0", "CREATE DATABASE app", schema)

	var primary atomic.Pointer[node]
	primary.Store(p)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cfg := binlogarchive.Config{ServerID: 9002, FlushEvery: 300 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	ar := startArchive(t, ctx, cfg, func(context.Context) (binlogarchive.Source, error) { return primary.Load().source(), nil }, start)

	for i := 1; i <= 100; i++ {
		p.exec(t, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'on p')", i))
	}
	pPos := p.pos(t)
	var waited int
	if err := r.root.QueryRow("SELECT MASTER_GTID_WAIT(?, 30)", pPos).Scan(&waited); err != nil || waited != 0 {
		t.Fatalf("replica did not catch up with %s: %v (%d)", pPos, err, waited)
	}
	p.p.Kill()
	r.exec(t, "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only=OFF")
	primary.Store(r)
	for i := 101; i <= 200; i++ {
		r.exec(t, fmt.Sprintf("INSERT INTO app.t VALUES (%d, 'on r')", i))
	}
	end := r.pos(t)
	ar.waitCommitted(t, end)
	ar.stop(t, cancel)

	segs, files := ar.stored()
	checkArchive(t, segs, files, start, end)
	if last := segs[len(segs)-1]; last.SourceNode != "r" {
		t.Errorf("last segment read from %q, want the promoted r", last.SourceNode)
	}
	apply(t, target, files)
	if got, want := target.rows(t, "app.t"), r.rows(t, "app.t"); !slices.Equal(got, want) || len(got) != 200 {
		t.Fatalf("replayed %d rows, want the promoted primary's %d", len(got), len(want))
	}
}

// A start position whose binlogs the primary purged is a gap: Run says so
// instead of retrying forever.
func TestArchiveGapWhenPurged(t *testing.T) {
	t.Parallel()
	p := newNode(t, "p", 1)
	startNodes(t, p)
	p.exec(t, "CREATE DATABASE app", schema)
	start := p.pos(t)
	p.exec(t, "INSERT INTO app.t VALUES (1, 'a')", "FLUSH BINARY LOGS", "INSERT INTO app.t VALUES (2, 'b')")
	p.purge(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := binlogarchive.Config{ServerID: 9003, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	ar := startArchive(t, ctx, cfg, func(context.Context) (binlogarchive.Source, error) { return p.source(), nil }, start)
	select {
	case err := <-ar.done:
		if !errors.Is(err, binlogarchive.ErrGap) {
			t.Fatalf("Run = %v, want ErrGap", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not report the gap")
	}
	if segs, _ := ar.stored(); len(segs) != 0 {
		t.Errorf("%d segments stored across a gap", len(segs))
	}
}

// From "" the archive starts at the oldest binlog the primary still has,
// and its first segment says where that is.
func TestArchiveFromOldestBinlog(t *testing.T) {
	t.Parallel()
	p := newNode(t, "p", 1)
	startNodes(t, p)
	p.exec(t, "CREATE DATABASE app", schema, "INSERT INTO app.t VALUES (1, 'a')")
	purged := p.pos(t)
	p.purge(t)
	p.exec(t, "INSERT INTO app.t VALUES (2, 'b')")
	end := p.pos(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ar := startArchive(t, ctx, binlogarchive.Config{ServerID: 9004}, func(context.Context) (binlogarchive.Source, error) { return p.source(), nil }, "")
	ar.waitCommitted(t, end)
	ar.stop(t, cancel)
	segs, files := ar.stored()
	checkArchive(t, segs, files, purged, end)
}
