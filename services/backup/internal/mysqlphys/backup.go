package mysqlphys

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Source is the node a backup is taken from, on this host.
type Source struct {
	Address  string // host:port
	DataDir  string
	User     string
	Password string
}

// Result is what a backup reported.
type Result struct {
	// GTID is the gtid_binlog_pos the copy is consistent with.
	GTID string
	// DataBytes is the size of the xbstream written (the data files copied
	// plus the stream's small per-chunk headers), before any compression.
	DataBytes    int64
	ConsistentAt time.Time
}

// binlogPosLine is mariadb-backup's report of the position its copy is
// consistent with, written while it holds BACKUP STAGE BLOCK_COMMIT.
var binlogPosLine = regexp.MustCompile(`MySQL binlog position: .*GTID of the last change '([^']*)'`)

// Backup streams a physical backup of src (mariadb-backup --backup
// --stream=xbstream) into w. It never stops writes on the source for
// longer than mariadb-backup's final short lock (BACKUP STAGE).
//
// The GTID is the position mariadb-backup reports under BACKUP STAGE
// BLOCK_COMMIT. On a node with a slave position in domains its binlog
// lacks (not Canopy's nodes: log_slave_updates makes both agree) that is
// gtid_current_pos and holds those domains too; Replay accepts it.
func (t *Tools) Backup(ctx context.Context, src Source, w io.Writer) (Result, error) {
	host, port, err := net.SplitHostPort(src.Address)
	if err != nil {
		return Result{}, fmt.Errorf("backup %s: address: %w", src.Address, err)
	}
	if src.DataDir == "" {
		return Result{}, fmt.Errorf("backup %s: no data dir", src.Address)
	}
	work, err := os.MkdirTemp(t.cfg.ScratchDir, "bk-")
	if err != nil {
		return Result{}, fmt.Errorf("backup %s: work dir: %w", src.Address, err)
	}
	defer os.RemoveAll(work)
	// Credentials go through a private defaults file: argv is readable by
	// every user of the host (ps).
	cnf := filepath.Join(work, "client.cnf")
	cnfText := "[client]\n" + "user=" + optionValue(src.User) + "\npassword=" + optionValue(src.Password) +
		"\nhost=" + optionValue(host) + "\nport=" + port + "\nprotocol=TCP\n"
	if err := os.WriteFile(cnf, []byte(cnfText), 0o600); err != nil {
		return Result{}, fmt.Errorf("backup %s: defaults file: %w", src.Address, err)
	}
	target := filepath.Join(work, "target")
	tmp := filepath.Join(work, "tmp")
	for _, d := range []string{target, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return Result{}, fmt.Errorf("backup %s: %w", src.Address, err)
		}
	}
	cmd := command(ctx, t.cfg.BackupBin, "--defaults-file="+cnf, "--backup", "--stream=xbstream",
		"--target-dir="+target, "--tmpdir="+tmp, "--datadir="+src.DataDir, "--parallel="+strconv.Itoa(t.cfg.Parallel))
	cw := &countingWriter{w: w}
	// The stream is pumped in large blocks: the sealing pipeline behind w
	// compresses in 1 MiB chunks, and 64 KiB pipe reads handed over one by
	// one cost it a goroutine switch each.
	out, outW, err := os.Pipe()
	if err != nil {
		return Result{}, fmt.Errorf("backup %s: %w", src.Address, err)
	}
	defer out.Close()
	growPipe(outW)
	cmd.Stdout = outW
	stderr, err := cmd.StderrPipe()
	if err != nil {
		outW.Close()
		return Result{}, fmt.Errorf("backup %s: %w", src.Address, err)
	}
	began := time.Now()
	err = cmd.Start()
	outW.Close() // the child holds its own copy
	if err != nil {
		return Result{}, fmt.Errorf("start mariadb-backup: %w", err)
	}
	pumped := make(chan error, 1)
	go func() {
		// A failed write must not leave mariadb-backup blocked on a full
		// pipe: closing the read end gives it EPIPE (and ends our read).
		err := pump(cw, out, func() { out.Close() })
		out.Close()
		pumped <- err
	}()
	tail := newTail(30)
	var (
		res     Result
		sawGTID bool
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			if m := binlogPosLine.FindStringSubmatch(line); m != nil {
				res.GTID, res.ConsistentAt, sawGTID = m[1], time.Now().UTC(), true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	wg.Wait() // stderr must be drained before Wait closes it
	pumpErr := <-pumped
	err = cmd.Wait()
	res.DataBytes = cw.n
	if cw.err != nil {
		return Result{}, fmt.Errorf("backup %s: write stream: %w", src.Address, cw.err)
	}
	if pumpErr != nil {
		return Result{}, fmt.Errorf("backup %s: read stream: %w", src.Address, pumpErr)
	}
	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("backup %s: %w", src.Address, ctx.Err())
	}
	if err != nil {
		return Result{}, fmt.Errorf("mariadb-backup of %s: %w: %s", src.Address, err, tail)
	}
	if !strings.Contains(tail.String(), "completed OK!") {
		return Result{}, fmt.Errorf("mariadb-backup of %s did not complete: %s", src.Address, tail)
	}
	if !sawGTID {
		// A source without a binary log has no position; its copy is
		// consistent as of the end.
		res.ConsistentAt = time.Now().UTC()
	}
	t.cfg.Log.Info("mysql backup streamed", "address", src.Address, "gtid", res.GTID, "bytes", res.DataBytes,
		"took", time.Since(began).Round(time.Millisecond))
	return res, nil
}

// optionValue quotes a value for an option file (it may hold '#', spaces
// or quotes).
func optionValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// countingWriter counts what reaches w and keeps w's first error: a tool
// writing into it sees EPIPE-like failure and the caller the real cause.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		c.err = err
		return n, err
	}
	return n, nil
}

var errIncomplete = errors.New("incomplete backup stream")
