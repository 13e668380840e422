package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// errReader yields some bytes, then fails: a backup tool dying mid-stream.
type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

// gateReader yields first, signals reached, and waits for release before
// yielding the rest: a Put caught half way.
type gateReader struct {
	first, rest      []byte
	reached, release chan struct{}
	state            int
}

func (g *gateReader) Read(p []byte) (int, error) {
	switch g.state {
	case 0:
		g.state = 1
		return copy(p, g.first), nil
	case 1:
		close(g.reached)
		<-g.release
		g.state = 2
		return copy(p, g.rest), nil
	default:
		return 0, io.EOF
	}
}

func get(t *testing.T, b Blobs, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

// testBlobs is the conformance suite every Blobs passes.
func testBlobs(t *testing.T, b Blobs) {
	ctx := context.Background()
	put := func(key string, data []byte) {
		t.Helper()
		if err := b.Put(ctx, key, bytes.NewReader(data)); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}

	t.Run("put get overwrite", func(t *testing.T) {
		put("t1/i1/backups/b1/data", []byte("first"))
		if got := get(t, b, "t1/i1/backups/b1/data"); string(got) != "first" {
			t.Fatalf("got %q", got)
		}
		put("t1/i1/backups/b1/data", []byte("second"))
		if got := get(t, b, "t1/i1/backups/b1/data"); string(got) != "second" {
			t.Fatalf("after overwrite got %q", got)
		}
		put("t1/i1/empty", nil)
		if got := get(t, b, "t1/i1/empty"); len(got) != 0 {
			t.Fatalf("empty object read back %d bytes", len(got))
		}
	})

	t.Run("missing", func(t *testing.T) {
		_, err := b.Get(ctx, "t1/nope/data")
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "t1/nope/data") {
			t.Fatalf("get missing: %v, want ErrMissing naming the key", err)
		}
		put("t1/file", []byte("x"))
		if _, err := b.Get(ctx, "t1/file/below"); !errors.Is(err, ErrMissing) {
			t.Fatalf("get below an object: %v, want ErrMissing", err)
		}
		if _, err := b.Get(ctx, "t1/i1"); !errors.Is(err, ErrMissing) {
			t.Fatalf("get a key prefix: %v, want ErrMissing", err)
		}
	})

	t.Run("invisible until complete", func(t *testing.T) {
		r := &gateReader{first: []byte("half of it"), rest: []byte(" and the rest"), reached: make(chan struct{}), release: make(chan struct{})}
		done := make(chan error, 1)
		go func() { done <- b.Put(ctx, "t6/i/data", r) }()
		<-r.reached // Put has read the first half and waits for the rest
		if _, err := b.Get(ctx, "t6/i/data"); !errors.Is(err, ErrMissing) {
			t.Errorf("get during put: %v, want ErrMissing", err)
		}
		if keys, err := b.List(ctx, "t6/"); err != nil || len(keys) != 0 {
			t.Errorf("list during put = %v, %v; want nothing", keys, err)
		}
		close(r.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := get(t, b, "t6/i/data"); string(got) != "half of it and the rest" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("list sorted by prefix", func(t *testing.T) {
		for _, k := range []string{"t2/i/binlog/000000000002", "t2/i/binlog/000000000001", "t2/i/backups/x/data", "t2/j/binlog/000000000001", "t2/i2/data"} {
			put(k, []byte(k))
		}
		cases := []struct {
			prefix string
			want   []string
		}{
			{"t2/i/binlog/", []string{"t2/i/binlog/000000000001", "t2/i/binlog/000000000002"}},
			{"t2/i/", []string{"t2/i/backups/x/data", "t2/i/binlog/000000000001", "t2/i/binlog/000000000002"}},
			{"t2/i", []string{"t2/i/backups/x/data", "t2/i/binlog/000000000001", "t2/i/binlog/000000000002", "t2/i2/data"}},
			{"t2/nothing/", nil},
		}
		for _, c := range cases {
			got, err := b.List(ctx, c.prefix)
			if err != nil {
				t.Fatalf("list %s: %v", c.prefix, err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("list %q = %v, want %v", c.prefix, got, c.want)
			}
		}
	})

	t.Run("delete idempotent", func(t *testing.T) {
		put("t3/i/a", []byte("a"))
		for range 2 {
			if err := b.Delete(ctx, "t3/i/a"); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
		if _, err := b.Get(ctx, "t3/i/a"); !errors.Is(err, ErrMissing) {
			t.Fatalf("get after delete: %v, want ErrMissing", err)
		}
		if keys, err := b.List(ctx, "t3/"); err != nil || len(keys) != 0 {
			t.Fatalf("list after delete = %v, %v", keys, err)
		}
	})

	t.Run("failed put leaves nothing", func(t *testing.T) {
		boom := errors.New("tool died")
		err := b.Put(ctx, "t4/i/data", &errReader{data: bytes.Repeat([]byte("x"), 100_000), err: boom})
		if !errors.Is(err, boom) {
			t.Fatalf("put with failing reader: %v, want the reader's error", err)
		}
		if _, err := b.Get(ctx, "t4/i/data"); !errors.Is(err, ErrMissing) {
			t.Fatalf("get after failed put: %v, want ErrMissing", err)
		}
		// A failed overwrite keeps the previous object whole.
		put("t4/i/data", []byte("previous"))
		if err := b.Put(ctx, "t4/i/data", &errReader{data: []byte("partial"), err: boom}); err == nil {
			t.Fatal("put with failing reader succeeded")
		}
		if got := get(t, b, "t4/i/data"); string(got) != "previous" {
			t.Fatalf("after failed overwrite got %q, want the previous object", got)
		}
		if keys, _ := b.List(ctx, "t4/"); !slices.Equal(keys, []string{"t4/i/data"}) {
			t.Fatalf("list after failed put = %v", keys)
		}
	})

	t.Run("invalid keys rejected", func(t *testing.T) {
		for _, k := range []string{"", "/abs/key", "a/../../etc/passwd", "..", "a//b", "a/./b", "a/", "a/.tmp-x"} {
			if err := b.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("put %q: %v, want ErrInvalidKey", k, err)
			}
			if _, err := b.Get(ctx, k); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("get %q: %v, want ErrInvalidKey", k, err)
			}
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Put(cctx, "t5/i/data", strings.NewReader("x")); err == nil {
			t.Fatal("put with cancelled context succeeded")
		}
		if _, err := b.Get(ctx, "t5/i/data"); !errors.Is(err, ErrMissing) {
			t.Fatalf("get after cancelled put: %v, want ErrMissing", err)
		}
	})
}

func TestFSBlobs(t *testing.T) {
	t.Parallel()
	fs, err := NewFS(filepath.Join(t.TempDir(), "backups"))
	if err != nil {
		t.Fatal(err)
	}
	testBlobs(t, fs)

	t.Run("modes and no leftovers", func(t *testing.T) {
		if err := fs.Put(context.Background(), "m/i/data", strings.NewReader("secret")); err != nil {
			t.Fatal(err)
		}
		_ = fs.Put(context.Background(), "m/i/failed", &errReader{data: []byte("half"), err: errors.New("boom")})
		for p, want := range map[string]os.FileMode{
			fs.Dir():                            0o700,
			filepath.Join(fs.Dir(), "m"):        0o700,
			filepath.Join(fs.Dir(), "m/i"):      0o700,
			filepath.Join(fs.Dir(), "m/i/data"): 0o600,
		} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != want {
				t.Errorf("%s mode %o, want %o", p, got, want)
			}
		}
		entries, err := os.ReadDir(filepath.Join(fs.Dir(), "m/i"))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "data" {
			t.Errorf("directory holds %v, want only data (no temporary files)", entries)
		}
	})

	t.Run("delete removes empty directories", func(t *testing.T) {
		ctx := context.Background()
		if err := fs.Put(ctx, "d/i/backups/b/data", strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		if err := fs.Delete(ctx, "d/i/backups/b/data"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(fs.Dir(), "d")); !os.IsNotExist(err) {
			t.Errorf("empty directories left behind: %v", err)
		}
		if _, err := os.Stat(fs.Dir()); err != nil {
			t.Errorf("root removed: %v", err)
		}
	})
}
