package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func mustKey(t testing.TB) []byte {
	t.Helper()
	k, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func obj2(o backup.Object, key string) backup.Object {
	o.Key = key
	return o
}

// compressible returns n bytes that look like a logical dump of a table:
// repetitive structure with varying values (zstd gets it to about a
// quarter, not to nothing). Built with appends, not fmt: it runs under
// the race detector for 50 MiB.
func compressible(n int) []byte {
	r := mrand.New(mrand.NewPCG(1, 2))
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	b := make([]byte, 0, n+200)
	two := func(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	for i := 0; len(b) < n; i++ {
		b = append(b, "INSERT INTO orders VALUES ("...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ",'"...)
		b = append(b, names[r.IntN(len(names))]...)
		b = append(b, "',"...)
		b = strconv.AppendInt(b, int64(r.IntN(100000)), 10)
		b = two(append(b, '.'), r.IntN(100))
		b = two(append(b, ",'2026-"...), 1+r.IntN(12))
		b = two(append(b, '-'), 1+r.IntN(28))
		b = two(append(b, ' '), r.IntN(24))
		b = two(append(b, ':'), r.IntN(60))
		b = two(append(b, ':'), r.IntN(60))
		b = append(b, "','pending"...)
		if r.IntN(2) == 0 {
			b = append(b, "pending"...)
		}
		b = append(b, "',"...)
		b = strconv.AppendUint(b, r.Uint64(), 16)
		b = append(b, ");\n"...)
	}
	return b[:n]
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func newFS(t testing.TB) *FS {
	t.Helper()
	fs, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// readAll opens and reads a sealed object through.
func readAll(t *testing.T, b Blobs, obj backup.Object, key []byte) ([]byte, error) {
	t.Helper()
	rc, err := Open(context.Background(), b, obj, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Sized up front: io.ReadAll's growth copies of 50 MiB are slow under
	// the race detector.
	buf := bytes.NewBuffer(make([]byte, 0, obj.PlainSize+bytes.MinRead))
	_, err = buf.ReadFrom(rc)
	return buf.Bytes(), err
}

func TestSealRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		plain []byte
	}{
		{"empty", nil},
		{"small", []byte("hello, backup")},
		{"compressible 50 MiB", compressible(50 << 20)},
		{"random 8 MiB", random(8 << 20)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fs := newFS(t)
			key := mustKey(t)
			obj, err := Seal(context.Background(), fs, "t/i/backups/b/data", key, bytes.NewReader(c.plain))
			if err != nil {
				t.Fatal(err)
			}
			if obj.Key != "t/i/backups/b/data" || obj.PlainSize != int64(len(c.plain)) || len(obj.SHA256) != 64 {
				t.Fatalf("object entry %+v", obj)
			}
			st, err := os.Stat(filepath.Join(fs.Dir(), "t/i/backups/b/data"))
			if err != nil || st.Size() != obj.Size {
				t.Fatalf("stored size %v (%v), entry says %d", st.Size(), err, obj.Size)
			}
			if err := Verify(context.Background(), fs, obj); err != nil {
				t.Fatalf("verify: %v", err)
			}
			got, err := readAll(t, fs, obj, key)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if !bytes.Equal(got, c.plain) {
				t.Fatalf("read back %d bytes, not the %d sealed", len(got), len(c.plain))
			}
			t.Logf("%d plaintext bytes stored in %d", obj.PlainSize, obj.Size)
			if c.name == "compressible 50 MiB" && obj.Size > obj.PlainSize/2 {
				t.Errorf("compressible data stored in %d of %d bytes: not compressed", obj.Size, obj.PlainSize)
			}
			if bytes.Contains(mustRead(t, fs, obj.Key), []byte("INSERT INTO")) {
				t.Error("plaintext visible in the stored object")
			}
		})
	}
}

func mustRead(t *testing.T, fs *FS, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fs.Dir(), filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenDetectsTampering(t *testing.T) {
	t.Parallel()
	const chunk = 4 << 10
	plain := random(10*chunk + 123) // random: one stored chunk per plaintext chunk, roughly
	key := mustKey(t)
	fs := newFS(t)
	obj, err := seal(context.Background(), fs, "t/i/data", key, bytes.NewReader(plain), sealOptions{chunkSize: chunk, level: encoderLevel})
	if err != nil {
		t.Fatal(err)
	}
	stored := mustRead(t, fs, obj.Key)
	sealed := chunk + tagSize
	nChunks := (len(stored) - headerSize + sealed - 1) / sealed
	if nChunks < 5 {
		t.Fatalf("only %d chunks", nChunks)
	}
	chunkAt := func(i int) []byte {
		end := min(headerSize+(i+1)*sealed, len(stored))
		return stored[headerSize+i*sealed : end]
	}
	lastStart := headerSize + (nChunks-1)*sealed

	// Each case rewrites the stored bytes; keepEntry keeps the manifest's
	// size and sha (the object was altered behind its back) unless the
	// case is about the entry matching altered bytes (only GCM can tell).
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		rehash bool // give the entry the altered bytes' size and sha
	}{
		{"one byte flipped in a chunk", func(b []byte) []byte { b[headerSize+3*sealed+77] ^= 0x01; return b }, false},
		{"one byte flipped, entry rehashed", func(b []byte) []byte { b[headerSize+3*sealed+77] ^= 0x01; return b }, true},
		{"header chunk size altered, entry rehashed", func(b []byte) []byte { b[len(magic)+2] ^= 0x20; return b }, true},
		{"header nonce prefix altered, entry rehashed", func(b []byte) []byte { b[headerSize-1] ^= 0x01; return b }, true},
		{"last chunk dropped", func(b []byte) []byte { return b[:lastStart] }, false},
		{"last chunk dropped, entry rehashed", func(b []byte) []byte { return b[:lastStart] }, true},
		{"last bytes cut", func(b []byte) []byte { return b[:len(b)-5] }, false},
		{"last bytes cut, entry rehashed", func(b []byte) []byte { return b[:len(b)-5] }, true},
		{"cut mid-chunk, entry rehashed", func(b []byte) []byte { return b[:headerSize+2*sealed+100] }, true},
		{"middle chunk dropped, entry rehashed", func(b []byte) []byte {
			return append(append([]byte{}, b[:headerSize+2*sealed]...), b[headerSize+3*sealed:]...)
		}, true},
		{"chunks swapped, entry rehashed", func(b []byte) []byte {
			out := append([]byte{}, b[:headerSize]...)
			out = append(out, chunkAt(1)...)
			out = append(out, chunkAt(0)...)
			return append(out, b[headerSize+2*sealed:]...)
		}, true},
		{"bytes appended, entry rehashed", func(b []byte) []byte { return append(b, 0, 0, 0) }, true},
		{"shorter than a header", func(b []byte) []byte { return b[:5] }, true},
		{"not a sealed object", func(b []byte) []byte { return []byte("plain text, not sealed at all") }, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			mutated := c.mutate(append([]byte{}, stored...))
			k := fmt.Sprintf("t/i/tampered-%d", i)
			o := obj2(obj, k)
			if c.rehash {
				var err error
				if o, err = storeRaw(fs, k, mutated); err != nil {
					t.Fatal(err)
				}
				o.PlainSize = obj.PlainSize
			} else if err := fs.Put(context.Background(), k, bytes.NewReader(mutated)); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, fs, o, key)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read %d bytes, err %v; want ErrCorrupt", len(got), err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), k) {
				t.Errorf("error %q does not name the object", err)
			}
			if !c.rehash {
				if err := Verify(context.Background(), fs, o); !errors.Is(err, ErrCorrupt) {
					t.Errorf("verify: %v, want ErrCorrupt", err)
				}
			}
		})
	}

	t.Run("wrong data key", func(t *testing.T) {
		t.Parallel()
		if _, err := readAll(t, fs, obj, mustKey(t)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open with another key: %v, want ErrCorrupt", err)
		}
	})
	t.Run("entry with another sha", func(t *testing.T) {
		t.Parallel()
		o := obj
		o.SHA256 = strings.Repeat("0", 64)
		if _, err := readAll(t, fs, o, key); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		_, err := Open(context.Background(), fs, obj2(obj, "t/i/gone"), key)
		if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "t/i/gone") {
			t.Fatalf("open missing: %v, want ErrMissing naming the key", err)
		}
		if err := Verify(context.Background(), fs, obj2(obj, "t/i/gone")); !errors.Is(err, ErrMissing) {
			t.Fatalf("verify missing: %v, want ErrMissing", err)
		}
	})
}

// storeRaw puts bytes as they are and returns an entry matching them.
func storeRaw(b Blobs, key string, data []byte) (backup.Object, error) {
	if err := b.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		return backup.Object{}, err
	}
	return backup.Object{Key: key, SHA256: sha256Hex(data), Size: int64(len(data))}, nil
}

func TestSealChunkBoundaries(t *testing.T) {
	t.Parallel()
	// Whatever the compressed length, including exact multiples of the
	// chunk size (which need an empty final chunk), the object opens.
	const chunk = 1 << 10
	fs := newFS(t)
	key := mustKey(t)
	for _, n := range []int{0, 1, chunk - 30, chunk, chunk + 1, 3*chunk - 17, 3 * chunk, 5*chunk + 9} {
		plain := random(n)
		obj, err := seal(context.Background(), fs, fmt.Sprintf("b/%d", n), key, bytes.NewReader(plain), sealOptions{chunkSize: chunk, level: encoderLevel})
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, fs, obj, key)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: read back %d, %v", n, len(got), err)
		}
	}
}

func TestSealFailingReaderLeavesNothing(t *testing.T) {
	t.Parallel()
	fs := newFS(t)
	boom := errors.New("mariadb-backup exited 1")
	_, err := Seal(context.Background(), fs, "t/i/backups/b/data", mustKey(t), &errReader{data: compressible(3 << 20), err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("seal: %v, want the reader's error", err)
	}
	t.Log(err)
	if keys, err := fs.List(context.Background(), ""); err != nil || len(keys) != 0 {
		t.Fatalf("repository holds %v (%v) after a failed seal", keys, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Seal(ctx, fs, "t/i/backups/c/data", mustKey(t), bytes.NewReader(random(1<<20))); !errors.Is(err, context.Canceled) {
		t.Fatalf("seal with a cancelled context: %v, want context.Canceled", err)
	}
	if keys, err := fs.List(context.Background(), ""); err != nil || len(keys) != 0 {
		t.Fatalf("repository holds %v (%v) after a cancelled seal", keys, err)
	}
	if _, err := Seal(context.Background(), fs, "t/i/data", []byte("short"), strings.NewReader("x")); err == nil {
		t.Fatal("seal with a 5-byte key succeeded")
	}
}

// failingBlobs reads part of what it is given, then fails like a full disk.
type failingBlobs struct {
	Blobs
	after int64
	err   error
}

func (f failingBlobs) Put(ctx context.Context, key string, r io.Reader) error {
	if _, err := io.CopyN(io.Discard, r, f.after); err != nil {
		return err
	}
	return f.err
}

func TestSealFailingRepository(t *testing.T) {
	t.Parallel()
	full := errors.New("no space left on device")
	b := failingBlobs{Blobs: newFS(t), after: 100, err: full}
	_, err := Seal(context.Background(), b, "t/i/data", mustKey(t), bytes.NewReader(random(4<<20)))
	if !errors.Is(err, full) || !strings.Contains(err.Error(), "t/i/data") {
		t.Fatalf("seal into a failing repository: %v, want its error naming the key", err)
	}
}

func TestOpenHonoursContext(t *testing.T) {
	t.Parallel()
	fs := newFS(t)
	key := mustKey(t)
	obj, err := Seal(context.Background(), fs, "t/i/data", key, bytes.NewReader(random(1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := Open(ctx, fs, obj, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cancel()
	if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v, want context.Canceled", err)
	}
}

func TestCopyAndVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	from, to := newFS(t), newFS(t)
	key := mustKey(t)
	var objs []backup.Object
	for i, plain := range [][]byte{compressible(2 << 20), nil, []byte("manifest")} {
		obj, err := Seal(ctx, from, fmt.Sprintf("t/i/backups/b/part%d", i), key, bytes.NewReader(plain))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	if err := Copy(ctx, from, to, objs...); err != nil {
		t.Fatalf("copy: %v", err)
	}
	for _, obj := range objs {
		if err := Verify(ctx, to, obj); err != nil {
			t.Errorf("verify copy: %v", err)
		}
		if !bytes.Equal(mustRead(t, from, obj.Key), mustRead(t, to, obj.Key)) {
			t.Errorf("%s: copy differs", obj.Key)
		}
	}
	got, err := readAll(t, to, objs[0], key)
	if err != nil || !bytes.Equal(got, compressible(2<<20)) {
		t.Fatalf("open copy: %d bytes, %v", len(got), err)
	}

	t.Run("corrupt source is not copied", func(t *testing.T) {
		stored := mustRead(t, from, objs[0].Key)
		stored[len(stored)/2] ^= 0x80
		if err := from.Put(ctx, "t/i/bad", bytes.NewReader(stored)); err != nil {
			t.Fatal(err)
		}
		bad := obj2(objs[0], "t/i/bad")
		if err := Verify(ctx, from, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("verify corrupt: %v, want ErrCorrupt", err)
		}
		if err := Copy(ctx, from, to, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("copy corrupt: %v, want ErrCorrupt", err)
		}
		if _, err := to.Get(ctx, "t/i/bad"); !errors.Is(err, ErrMissing) {
			t.Fatalf("corrupt source copied: %v", err)
		}
	})
	t.Run("missing source", func(t *testing.T) {
		if err := Copy(ctx, from, to, obj2(objs[0], "t/i/none")); !errors.Is(err, ErrMissing) {
			t.Fatalf("copy missing: %v, want ErrMissing", err)
		}
	})
}
