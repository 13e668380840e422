package mysqlphys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files mariadb-backup streams last (xtrabackup_info is the very last):
// a stream that ends before them was cut, even when it ends on a chunk
// boundary and mbstream is content.
var streamTrailer = [][]string{
	{"xtrabackup_checkpoints", "mariadb_backup_checkpoints"},
	{"backup-my.cnf"},
	{"xtrabackup_info", "mariadb_backup_info"},
}

// binlogInfoFiles hold the position of a prepared backup (the newer name
// first).
var binlogInfoFiles = []string{"mariadb_backup_binlog_info", "xtrabackup_binlog_info"}

// Prepare extracts the xbstream read from r into dir (created, must not
// exist or be empty) and prepares it (mariadb-backup --prepare), returning
// the GTID position it is consistent with. A truncated or failing stream
// is an error, never a half-prepared success.
func (t *Tools) Prepare(ctx context.Context, r io.Reader, dir string) (gtid string, err error) {
	if err := emptyDir(dir); err != nil {
		return "", fmt.Errorf("prepare %s: %w", dir, err)
	}
	began := time.Now()
	if err := t.extract(ctx, r, dir); err != nil {
		return "", fmt.Errorf("prepare %s: %w", dir, err)
	}
	for _, names := range streamTrailer {
		if !anyExists(dir, names) {
			return "", fmt.Errorf("prepare %s: %w: %s missing (the stream was cut)", dir, errIncomplete, names[0])
		}
	}
	extracted := time.Now()
	tail := newTail(30)
	cmd := command(ctx, t.cfg.BackupBin, "--no-defaults", "--prepare", "--target-dir="+dir, "--use-memory=128M")
	cmd.Stdout, cmd.Stderr = tail, tail
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mariadb-backup --prepare %s: %w: %s", dir, err, tail)
	}
	gtid, err = readBinlogInfo(dir)
	if err != nil {
		return "", fmt.Errorf("prepare %s: %w", dir, err)
	}
	t.cfg.Log.Info("mysql backup prepared", "dir", dir, "gtid", gtid, "extract", extracted.Sub(began).Round(time.Millisecond),
		"prepare", time.Since(extracted).Round(time.Millisecond))
	return gtid, nil
}

// extract runs mbstream -x with r on its stdin; a read error of r fails it
// (mbstream is killed) whatever mbstream made of the part it got.
func (t *Tools) extract(ctx context.Context, r io.Reader, dir string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tail := newTail(20)
	cmd := command(ctx, t.cfg.MbstreamBin, "-x", "-C", dir)
	cmd.Stdout, cmd.Stderr = tail, tail
	pr, stdin, err := os.Pipe()
	if err != nil {
		return err
	}
	growPipe(stdin)
	cmd.Stdin = pr
	err = cmd.Start()
	pr.Close() // mbstream holds its own copy
	if err != nil {
		stdin.Close()
		return fmt.Errorf("start mbstream: %w", err)
	}
	src := &errReader{r: r}
	copyErr := pump(stdin, src, nil)
	if src.err != nil {
		cancel() // kills mbstream: nothing it extracts is to be used
	}
	closeErr := stdin.Close()
	waitErr := cmd.Wait()
	switch {
	case src.err != nil:
		return fmt.Errorf("read backup stream: %w", src.err)
	case waitErr != nil:
		return fmt.Errorf("mbstream -x: %w: %s", waitErr, tail)
	case copyErr != nil:
		return fmt.Errorf("mbstream -x stopped reading: %w: %s", copyErr, tail)
	case closeErr != nil && !errors.Is(closeErr, os.ErrClosed):
		return fmt.Errorf("mbstream -x: %w", closeErr)
	}
	return nil
}

// readBinlogInfo returns the GTID position of a prepared dir: the third
// field of its binlog info file ("mysql-bin.000003\t1234\t0-1-42"), empty
// when the source had no binary log.
func readBinlogInfo(dir string) (string, error) {
	for _, name := range binlogInfoFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		fields := strings.Fields(string(b))
		if len(fields) >= 3 {
			return fields[2], nil
		}
		return "", nil
	}
	return "", nil
}

// emptyDir makes dir, or accepts an existing empty one.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.MkdirAll(dir, 0o700)
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("directory %s is not empty", dir)
	}
	return nil
}

func anyExists(dir string, names []string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// errReader keeps the error of the reader it wraps (io.EOF excluded), to
// tell a failing source from a failing consumer.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
