package mysqlphys

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrStopNotReached: the binlog files ended before the stop GTID; the
// restored data would be short of the target.
var ErrStopNotReached = errors.New("binlog replay did not reach the stop GTID")

// Replay makes a prepared dir the data of a new instance: it starts a
// scratch server on it, applies the binlog files in order from after
// start (a GTID position: the backup's), stopping before stopBefore
// (exclusive; zero: no bound) and after stopGTID (inclusive; "": no
// bound), clears replication state (gtid_slave_pos, master info, relay
// logs) and stops it cleanly. It returns the last GTID applied (start
// when none) as a GTID position: start advanced by every transaction
// applied, one GTID per domain. With no files it only clears and stops.
func (t *Tools) Replay(ctx context.Context, dir string, files []string, start string, stopBefore time.Time, stopGTID string) (reached string, err error) {
	began := time.Now()
	pos, err := parsePos(start)
	if err != nil {
		return "", fmt.Errorf("replay into %s: start: %w", dir, err)
	}
	stopPos, err := parsePos(stopGTID)
	if err != nil {
		return "", fmt.Errorf("replay into %s: stop GTID: %w", dir, err)
	}
	s, err := t.startScratch(ctx, dir)
	if err != nil {
		return "", fmt.Errorf("replay into %s: %w", dir, err)
	}
	applied := 0
	if len(files) > 0 {
		if applied, err = t.apply(ctx, s, files, start, stopBefore, stopPos, pos); err != nil {
			s.kill()
			return "", fmt.Errorf("replay into %s: %w", dir, err)
		}
	}
	for d, seq := range stopPos {
		if pos[d].seq < seq.seq {
			s.kill()
			return "", fmt.Errorf("replay into %s: %w: %s, reached %s", dir, ErrStopNotReached, stopGTID, pos.String())
		}
	}
	if err := clearReplication(ctx, s); err != nil {
		s.kill()
		return "", fmt.Errorf("replay into %s: %w", dir, err)
	}
	if err := s.stop(ctx); err != nil {
		return "", fmt.Errorf("replay into %s: %w", dir, err)
	}
	if err := removeReplicationFiles(dir); err != nil {
		return "", fmt.Errorf("replay into %s: %w", dir, err)
	}
	reached = pos.String()
	t.cfg.Log.Info("binlog replayed", "dir", dir, "files", len(files), "transactions", applied, "start", start,
		"reached", reached, "took", time.Since(began).Round(time.Millisecond))
	return reached, nil
}

// apply pipes mariadb-binlog's output into the mariadb client connected to
// s, advancing pos by each transaction the output holds whole. Both tools
// must succeed: the client stops at the first failing statement.
//
// The start position and the stop time are mariadb-binlog's own filters;
// the stop GTID is applied here, on its output: mariadb-binlog 10.11's
// GTID --stop-position outputs only the domains it names and fails on
// standalone segment files that hold none of a start domain's events.
func (t *Tools) apply(ctx context.Context, s *scratch, files []string, start string, stopBefore time.Time, stop gtidPos, pos gtidPos) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dumpCtx, cutDump := context.WithCancel(ctx)
	defer cutDump()
	args := []string{"--no-defaults"}
	if start != "" {
		args = append(args, "--start-position="+start)
	}
	if !stopBefore.IsZero() {
		// mariadb-binlog compares whole seconds, in its TZ (UTC below):
		// an exclusive bound inside a second still takes that second.
		b := stopBefore.UTC()
		if b.Truncate(time.Second) != b {
			b = b.Truncate(time.Second).Add(time.Second)
		}
		args = append(args, "--stop-datetime="+b.Format(time.DateTime))
	}
	args = append(args, files...)
	dump := command(dumpCtx, t.cfg.BinlogBin, args...)
	dump.Env = append(os.Environ(), "TZ=UTC")
	dumpErr := newTail(20)
	dump.Stderr = dumpErr
	out, err := dump.StdoutPipe()
	if err != nil {
		return 0, err
	}
	client := command(ctx, t.cfg.ClientBin, "--no-defaults", "--socket="+s.socket, "--user="+osUser(),
		"--binary-mode", "--batch", "--max-allowed-packet=1G")
	clientErr := newTail(20)
	client.Stdout, client.Stderr = clientErr, clientErr
	in, err := client.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := client.Start(); err != nil {
		return 0, fmt.Errorf("start mariadb client: %w", err)
	}
	if err := dump.Start(); err != nil {
		cancel()
		_ = client.Wait()
		return 0, fmt.Errorf("start mariadb-binlog: %w", err)
	}
	tr := &txTracker{pos: pos, stop: stop}
	copyErr := tr.copy(in, out)
	cut := errors.Is(copyErr, errCut)
	switch {
	case cut:
		cutDump() // the rest is past the stop GTID
		copyErr = nil
	case copyErr != nil:
		cancel() // a partial apply is useless: stop both
	}
	_ = in.Close()
	_, _ = io.Copy(io.Discard, out)
	dumpWait := dump.Wait()
	clientWait := client.Wait()
	switch {
	case clientWait != nil:
		return 0, fmt.Errorf("mariadb client applying binlog: %w: %s", clientWait, clientErr)
	case dumpWait != nil && !cut && !onlyUnreachedStart(dumpErr.String()):
		return 0, fmt.Errorf("mariadb-binlog: %w: %s", dumpWait, dumpErr)
	case copyErr != nil:
		return 0, fmt.Errorf("pipe binlog to client: %w", copyErr)
	case ctx.Err() != nil:
		return 0, ctx.Err()
	}
	return tr.applied, nil
}

// onlyUnreachedStart tells whether mariadb-binlog failed only because a
// domain of the start position had no later event in the files ("Binary
// logs never reached expected GTID state of 5-9-3", said after the whole
// output): nothing of that domain was to be applied.
func onlyUnreachedStart(stderr string) bool {
	found := false
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, "ERROR:") {
			continue
		}
		if !strings.Contains(l, "never reached expected GTID state") {
			return false
		}
		found = true
	}
	return found
}

// gtidHeader is an event header mariadb-binlog prints for a GTID event:
// "#261203 15:16:41 server id 1  end_log_pos 1136 CRC32 0x… \tGTID 0-1-6 trans".
var gtidHeader = regexp.MustCompile(`^#\d{6} .*\tGTID (\d+)-(\d+)-(\d+)(.*)$`)

// errCut ends the copy at the stop GTID.
var errCut = errors.New("stop GTID reached")

// txTracker copies mariadb-binlog's output line by line and follows the
// transactions in it: a GTID counts once the output holds its end (the
// COMMIT of a transaction, the statement of a DDL); a transaction the
// output cuts (a stop time inside it) is rolled back by the ROLLBACK
// mariadb-binlog appends and does not count. With a stop position, the
// copy ends at the first event boundary after every stop domain reached
// its GTID, or before a GTID past it.
type txTracker struct {
	pos     gtidPos
	stop    gtidPos
	applied int
	// pending is the GTID whose end is awaited; ddl marks a standalone
	// statement (no BEGIN/COMMIT around it).
	pending *gtid
	ddl     bool
	// stopped: the stop is reached; cut at the next event boundary.
	stopped bool
}

func (tr *txTracker) copy(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 256*1024)
	bw := bufio.NewWriterSize(w, 256*1024)
	startOfLine := true
	for {
		// Lines may be long (base64 row events); only their starts matter.
		chunk, isPrefix, err := br.ReadLine()
		if len(chunk) > 0 || err == nil {
			if startOfLine && !tr.line(chunk) {
				if ferr := bw.Flush(); ferr != nil {
					return ferr
				}
				return errCut
			}
			if _, werr := bw.Write(chunk); werr != nil {
				return werr
			}
			if !isPrefix {
				if werr := bw.WriteByte('\n'); werr != nil {
					return werr
				}
			}
			startOfLine = !isPrefix
		}
		if err == io.EOF {
			return bw.Flush()
		}
		if err != nil {
			return err
		}
	}
}

var (
	commitLine  = []byte("COMMIT/*!*/;")
	commitQuery = []byte("COMMIT")
	eventStart  = []byte("# at ")
	delimiter   = []byte("DELIMITER ")
)

// line follows one output line; false cuts the output before it.
func (tr *txTracker) line(l []byte) bool {
	if tr.stopped && (bytes.HasPrefix(l, eventStart) || bytes.HasPrefix(l, delimiter)) {
		return false
	}
	if len(l) > 0 && l[0] == '#' {
		if m := gtidHeader.FindSubmatch(l); m != nil {
			d, _ := strconv.ParseUint(string(m[1]), 10, 32)
			srv, _ := strconv.ParseUint(string(m[2]), 10, 32)
			seq, _ := strconv.ParseUint(string(m[3]), 10, 64)
			g := gtid{domain: uint32(d), server: uint32(srv), seq: seq}
			if st, ok := tr.stop[g.domain]; ok && g.seq > st.seq {
				return false
			}
			tr.pending = &g
			tr.ddl = bytes.Contains(m[4], []byte(" ddl"))
			return true
		}
		if tr.pending != nil && tr.ddl && bytes.Contains(l, []byte("\tQuery\t")) {
			tr.done()
		}
		return true
	}
	if tr.pending != nil && !tr.ddl && (bytes.Equal(l, commitLine) || bytes.Equal(l, commitQuery)) {
		tr.done()
	}
	return true
}

func (tr *txTracker) done() {
	tr.pos[tr.pending.domain] = *tr.pending
	tr.pending = nil
	tr.applied++
	if len(tr.stop) == 0 {
		return
	}
	for d, st := range tr.stop {
		if tr.pos[d].seq < st.seq {
			return
		}
	}
	tr.stopped = true
}

// clearReplication removes what the source's replication left in the
// copy (a backup taken on a replica): the new instance's nodes start with
// empty GTID state and configure their own replication.
func clearReplication(ctx context.Context, s *scratch) error {
	rows, err := s.db.QueryContext(ctx, "SHOW ALL SLAVES STATUS")
	if err != nil {
		return fmt.Errorf("list replication connections: %w", err)
	}
	cols, _ := rows.Columns()
	var names []string
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new([]byte)
		}
		if err := rows.Scan(vals...); err != nil {
			rows.Close()
			return fmt.Errorf("list replication connections: %w", err)
		}
		for i, c := range cols {
			if c == "Connection_name" {
				names = append(names, string(*vals[i].(*[]byte)))
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list replication connections: %w", err)
	}
	stmts := []string{}
	for _, n := range names {
		q := "'" + strings.ReplaceAll(n, "'", "''") + "'"
		stmts = append(stmts, "STOP SLAVE "+q, "RESET SLAVE "+q+" ALL")
	}
	stmts = append(stmts, "RESET SLAVE ALL", "SET GLOBAL gtid_slave_pos = ''", "TRUNCATE TABLE mysql.gtid_slave_pos")
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("clear replication state: %s: %w", q, err)
		}
	}
	return nil
}

// removeReplicationFiles deletes master info and relay logs a stopped
// server left in dir (RESET SLAVE ALL removed its own; others may have
// come with the copy).
func removeReplicationFiles(dir string) error {
	for _, pattern := range []string{"master*.info", "multi-master.info", "relay-log*.info", "*relay-bin.*", "*relay-bin-*"} {
		matches, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", m, err)
			}
		}
	}
	return nil
}

// gtid is one MariaDB GTID, domain-server-seq.
type gtid struct {
	domain, server uint32
	seq            uint64
}

// gtidPos is a GTID position: the last GTID of each domain.
type gtidPos map[uint32]gtid

func parsePos(s string) (gtidPos, error) {
	p := gtidPos{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f := strings.Split(part, "-")
		if len(f) != 3 {
			return nil, fmt.Errorf("invalid GTID %q", part)
		}
		d, err1 := strconv.ParseUint(f[0], 10, 32)
		srv, err2 := strconv.ParseUint(f[1], 10, 32)
		seq, err3 := strconv.ParseUint(f[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("invalid GTID %q: %w", part, err)
		}
		p[uint32(d)] = gtid{uint32(d), uint32(srv), seq}
	}
	return p, nil
}

func (p gtidPos) String() string {
	ds := make([]uint32, 0, len(p))
	for d := range p {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	parts := make([]string, len(ds))
	for i, d := range ds {
		g := p[d]
		parts[i] = fmt.Sprintf("%d-%d-%d", g.domain, g.server, g.seq)
	}
	return strings.Join(parts, ",")
}
