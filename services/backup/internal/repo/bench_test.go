package repo

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// discard is a Blobs that drops what it is given, so the benchmark
// measures sealing (compression, encryption, hashing) and not a disk.
type discard struct{}

func (discard) Put(ctx context.Context, key string, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (discard) Get(context.Context, string) (io.ReadCloser, error) { return nil, ErrMissing }
func (discard) Delete(context.Context, string) error               { return nil }
func (discard) List(context.Context, string) ([]string, error)     { return nil, nil }

// BenchmarkSeal reports plaintext MB/s of Seal on compressible data. The
// "default" sub-benchmarks are what the production level is chosen
// against; see encoderLevel.
func BenchmarkSeal(b *testing.B) {
	plain := compressible(64 << 20)
	key := mustKey(b)
	for _, c := range []struct {
		name  string
		level zstd.EncoderLevel
	}{
		{"production", encoderLevel},
		{"fastest", zstd.SpeedFastest},
		{"default", zstd.SpeedDefault},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			var stored int64
			for b.Loop() {
				obj, err := seal(context.Background(), discard{}, "bench", key, bytes.NewReader(plain), sealOptions{chunkSize: defaultChunkSize, level: c.level})
				if err != nil {
					b.Fatal(err)
				}
				stored = obj.Size
			}
			b.ReportMetric(float64(len(plain))/float64(stored), "ratio")
		})
	}
}

// BenchmarkOpen reports plaintext MB/s of reading a sealed object back.
func BenchmarkOpen(b *testing.B) {
	plain := compressible(64 << 20)
	key := mustKey(b)
	fs := newFS(b)
	obj, err := Seal(context.Background(), fs, "bench", key, bytes.NewReader(plain))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		rc, err := Open(context.Background(), fs, obj, key)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
