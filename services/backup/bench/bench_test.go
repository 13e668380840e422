// Package bench measures Canopy's MySQL backups against the bare tool on
// the same data in the same run: mariadb-backup --backup into a directory
// against mysqlphys.Backup piped through repo.Seal into a directory
// repository (goal: at least 0.7 of the bare throughput), and
// mariadb-backup --prepare + --copy-back against repo.Open → Prepare →
// copy into a node's data dir (goal: at most 1.3 times the bare time).
//
//	go test ./bench -run '^$' -bench . -benchtime 1x
//
// CANOPY_BENCH_BACKUP_MB sets the data size (default 512).
package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/enginetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys/phystest"
	"github.com/canopy-platform/canopy/services/backup/internal/repo"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}

// env is a node holding the benchmark's data, the tools and a repository.
type env struct {
	node    *phystest.Node
	tools   *mysqlphys.Tools
	blobs   *repo.FS
	work    string
	dataKey []byte
	src     mysqlphys.Source
}

func setup(b *testing.B) *env {
	b.Helper()
	mb := 512
	if s := os.Getenv("CANOPY_BENCH_BACKUP_MB"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("CANOPY_BENCH_BACKUP_MB=%q", s)
		}
		mb = v
	}
	work := b.TempDir()
	tools, err := mysqlphys.New(mysqlphys.Config{ScratchDir: enginetest.TempDir(b),
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		b.Skipf("backup tools: %v", err)
	}
	blobs, err := repo.NewFS(filepath.Join(work, "repo"))
	if err != nil {
		b.Fatal(err)
	}
	key, err := repo.NewDataKey()
	if err != nil {
		b.Fatal(err)
	}
	node := phystest.StartMariaDB(b, phystest.Options{BufferPool: "256M"})
	began := time.Now()
	load(b, node.Root, int64(mb)<<20)
	b.Logf("loaded %d MB in %s", mb, time.Since(began).Round(time.Second))
	return &env{node: node, tools: tools, blobs: blobs, work: work, dataKey: key,
		src: mysqlphys.Source{Address: node.Addr, DataDir: node.DataDir, User: phystest.AdminUser, Password: phystest.AdminPassword}}
}

// load fills bench.t with rows of hex text (compressible about 2:1, as
// typical tenant data) until its tablespace holds size bytes. The load
// is not binlogged: the backups copy tables, not logs.
func load(b *testing.B, db *sql.DB, size int64) {
	b.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "CREATE DATABASE bench", "USE bench",
		"CREATE TABLE bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, a CHAR(32) NOT NULL, b VARCHAR(200) NOT NULL, n INT NOT NULL, KEY (n))",
		"CREATE TABLE bench.small (id INT PRIMARY KEY, v VARCHAR(20))", "INSERT INTO bench.small SELECT seq, 'x' FROM seq_1_to_1000"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	var ibd string
	if err := conn.QueryRowContext(ctx, "SELECT @@datadir").Scan(&ibd); err != nil {
		b.Fatal(err)
	}
	ibd = filepath.Join(ibd, "bench", "t.ibd")
	for {
		st, err := os.Stat(ibd)
		if err != nil {
			b.Fatal(err)
		}
		if st.Size() >= size {
			return
		}
		// Fresh random text per batch (no long-range repeats for zstd to
		// find), the sequence engine as the row source.
		if _, err := conn.ExecContext(ctx, `INSERT INTO bench.t (a, b, n)
SELECT MD5(RAND()), CONCAT(MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND())), FLOOR(RAND() * 1000000000)
FROM seq_1_to_262144`); err != nil {
			b.Fatal(err)
		}
	}
}

// bareBackup runs mariadb-backup --backup into dir and returns its time.
func (e *env) bareBackup(b *testing.B, dir string) time.Duration {
	b.Helper()
	cnf := filepath.Join(e.work, "bare.cnf")
	text := fmt.Sprintf("[client]\nuser=%s\npassword=\"%s\"\nhost=127.0.0.1\nport=%d\nprotocol=TCP\n",
		phystest.AdminUser, escapeOpt(phystest.AdminPassword), e.node.Proc.Port)
	if err := os.WriteFile(cnf, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	out, err := exec.Command("mariadb-backup", "--defaults-file="+cnf, "--backup", "--target-dir="+dir,
		"--datadir="+e.node.DataDir, "--parallel=2").CombinedOutput()
	took := time.Since(began)
	if err != nil {
		b.Fatalf("mariadb-backup --backup: %v: %s", err, tail(out))
	}
	return took
}

func escapeOpt(s string) string {
	out := ""
	for _, r := range s {
		if r == '"' || r == '\\' {
			out += `\`
		}
		out += string(r)
	}
	return out
}

// canopyBackup streams Backup into repo.Seal and returns the object and
// the time.
func (e *env) canopyBackup(b *testing.B, key string) (backup.Object, time.Duration) {
	b.Helper()
	ctx := context.Background()
	pr, pw := io.Pipe()
	began := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := e.tools.Backup(ctx, e.src, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	obj, err := repo.Seal(ctx, e.blobs, key, e.dataKey, pr)
	pr.CloseWithError(err)
	berr := <-done
	took := time.Since(began)
	if berr != nil {
		b.Fatal(berr)
	}
	if err != nil {
		b.Fatal(err)
	}
	return obj, took
}

// BenchmarkBackupThroughput compares the bare mariadb-backup copy with
// Canopy's streamed, compressed and encrypted backup, best of two each,
// alternated so that both see the same cache state.
func BenchmarkBackupThroughput(b *testing.B) {
	e := setup(b)
	for b.Loop() {
		var bare, canopy time.Duration
		var bytes int64
		var obj backup.Object
		for i := range 2 {
			dir := filepath.Join(e.work, "bare-"+strconv.Itoa(i))
			t := e.bareBackup(b, dir)
			bytes = dirSize(b, dir)
			os.RemoveAll(dir)
			var c time.Duration
			obj, c = e.canopyBackup(b, "t/i/backups/b"+strconv.Itoa(i)+"/data")
			if i == 0 || t < bare {
				bare = t
			}
			if i == 0 || c < canopy {
				canopy = c
			}
		}
		// Backup alone (no sealing), for the breakdown of Canopy's time.
		began := time.Now()
		res, err := e.tools.Backup(context.Background(), e.src, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("mysqlphys.Backup into io.Discard: %.1f MB/s of stream", float64(res.DataBytes)/(1<<20)/time.Since(began).Seconds())
		mb := float64(bytes) / (1 << 20)
		bareMBs, canopyMBs := mb/bare.Seconds(), mb/canopy.Seconds()
		b.ReportMetric(bareMBs, "bare-MB/s")
		b.ReportMetric(canopyMBs, "canopy-MB/s")
		b.ReportMetric(canopyMBs/bareMBs, "ratio")
		b.Logf("backup of %.0f MB: bare mariadb-backup %.1f MB/s (%s), Canopy Backup→Seal %.1f MB/s (%s, stored %.0f MB); ratio %.2f (goal >= 0.7)",
			mb, bareMBs, bare.Round(time.Millisecond), canopyMBs, canopy.Round(time.Millisecond),
			float64(obj.Size)/(1<<20), canopyMBs/bareMBs)
	}
}

// BenchmarkRestore compares mariadb-backup --prepare + --copy-back with
// Canopy's repo.Open → Prepare → copy into a node's data dir, from
// backups of the same data.
func BenchmarkRestore(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	for b.Loop() {
		obj, _ := e.canopyBackup(b, "t/i/backups/r/data")
		// A plain xbstream file: what a bare streamed backup restores from.
		plain := filepath.Join(e.work, "plain.xb")
		f, err := os.Create(plain)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.tools.Backup(ctx, e.src, f); err != nil {
			b.Fatal(err)
		}
		f.Close()
		// repo.Open alone, for the breakdown of Canopy's time.
		{
			began := time.Now()
			rc, err := repo.Open(ctx, e.blobs, obj, e.dataKey)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("repo.Open alone: %.0f MB in %.2f s", float64(n)/(1<<20), time.Since(began).Seconds())
		}
		var bare, bareStream, canopy time.Duration
		// Best of two each, alternated: other work on the machine moves
		// single runs by more than the difference measured.
		for i := range 2 {
			bareDir := filepath.Join(e.work, "bare")
			e.bareBackup(b, bareDir)
			began := time.Now()
			for _, args := range [][]string{
				{"--no-defaults", "--prepare", "--target-dir=" + bareDir, "--use-memory=128M"},
				{"--no-defaults", "--copy-back", "--target-dir=" + bareDir, "--datadir=" + filepath.Join(e.work, "bare-node")},
			} {
				if out, err := exec.Command("mariadb-backup", args...).CombinedOutput(); err != nil {
					b.Fatalf("mariadb-backup %s: %v: %s", args[1], err, tail(out))
				}
			}
			t := time.Since(began)

			streamDir := filepath.Join(e.work, "bare-stream")
			began = time.Now()
			if err := os.Mkdir(streamDir, 0o700); err != nil {
				b.Fatal(err)
			}
			for _, sh := range []string{
				"mbstream -x -C " + streamDir + " < " + plain,
				"mariadb-backup --no-defaults --prepare --target-dir=" + streamDir + " --use-memory=128M",
				"mariadb-backup --no-defaults --copy-back --target-dir=" + streamDir + " --datadir=" + filepath.Join(e.work, "bare-stream-node"),
			} {
				if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
					b.Fatalf("%s: %v: %s", sh, err, tail(out))
				}
			}
			ts := time.Since(began)

			began = time.Now()
			rc, err := repo.Open(ctx, e.blobs, obj, e.dataKey)
			if err != nil {
				b.Fatal(err)
			}
			prepared := filepath.Join(e.work, "canopy-prepared")
			if _, err := e.tools.Prepare(ctx, rc, prepared); err != nil {
				b.Fatal(err)
			}
			rc.Close()
			prepDone := time.Since(began)
			if err := copyTree(prepared, filepath.Join(e.work, "canopy-node")); err != nil {
				b.Fatal(err)
			}
			c := time.Since(began)
			b.Logf("round %d: bare %.2f s, bare from a stream file %.2f s; Canopy Open→Prepare %.2f s + copy %.2f s", i, t.Seconds(), ts.Seconds(), prepDone.Seconds(), (c - prepDone).Seconds())
			if i == 0 || t < bare {
				bare = t
			}
			if i == 0 || ts < bareStream {
				bareStream = ts
			}
			if i == 0 || c < canopy {
				canopy = c
			}
			for _, d := range []string{bareDir, streamDir, filepath.Join(e.work, "bare-stream-node"), prepared, filepath.Join(e.work, "bare-node"), filepath.Join(e.work, "canopy-node")} {
				os.RemoveAll(d)
			}
		}
		b.ReportMetric(bare.Seconds(), "bare-s")
		b.ReportMetric(canopy.Seconds(), "canopy-s")
		b.ReportMetric(canopy.Seconds()/bare.Seconds(), "ratio")
		b.ReportMetric(canopy.Seconds()/bareStream.Seconds(), "ratio-vs-stream")
		b.Logf("restore of %.0f MB: bare prepare+copy-back %.2f s, Canopy Open→Prepare→copy %.2f s; ratio %.2f (goal <= 1.3); "+
			"bare mbstream -x+prepare+copy-back from a local stream file %.2f s, ratio %.2f",
			float64(obj.PlainSize)/(1<<20), bare.Seconds(), canopy.Seconds(), canopy.Seconds()/bare.Seconds(),
			bareStream.Seconds(), canopy.Seconds()/bareStream.Seconds())
		os.Remove(plain)
	}
}

// copyTree copies a prepared dir into a new node data dir, as seeding a
// node does.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func dirSize(b *testing.B, dir string) int64 {
	b.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func tail(b []byte) string {
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}
