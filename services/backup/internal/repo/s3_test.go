package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"
)

// newTestS3 connects to the bucket named by CANOPY_TEST_S3_* under a
// fresh prefix, deleting what the test left there at cleanup; without
// those variables the test is skipped (there is no S3 server here, and a
// fake one would only test the fake).
func newTestS3(t *testing.T) *S3 {
	t.Helper()
	env := map[string]string{}
	for _, v := range []string{"CANOPY_TEST_S3_ENDPOINT", "CANOPY_TEST_S3_BUCKET", "CANOPY_TEST_S3_ACCESS_KEY", "CANOPY_TEST_S3_SECRET_KEY"} {
		env[v] = os.Getenv(v)
		if env[v] == "" {
			t.Skipf("S3 tests need CANOPY_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY and _SECRET_KEY; %s is not set", v)
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	ctx := context.Background()
	s, err := NewS3(ctx, S3Config{
		Endpoint:  env["CANOPY_TEST_S3_ENDPOINT"],
		Bucket:    env["CANOPY_TEST_S3_BUCKET"],
		Prefix:    "canopy-test/" + t.Name() + "-" + hex.EncodeToString(rnd[:]),
		Region:    os.Getenv("CANOPY_TEST_S3_REGION"),
		AccessKey: env["CANOPY_TEST_S3_ACCESS_KEY"],
		SecretKey: env["CANOPY_TEST_S3_SECRET_KEY"],
		UseTLS:    os.Getenv("CANOPY_TEST_S3_TLS") == "1",
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		keys, err := s.List(ctx, "")
		if err != nil {
			t.Logf("cleanup list: %v", err)
		}
		for _, k := range keys {
			if err := s.Delete(ctx, k); err != nil {
				t.Logf("cleanup %s: %v", k, err)
			}
		}
	})
	return s
}

func TestS3Blobs(t *testing.T) {
	t.Parallel()
	s := newTestS3(t)
	testBlobs(t, s)

	t.Run("sealed round trip over multiple parts", func(t *testing.T) {
		ctx := context.Background()
		key := mustKey(t)
		plain := make([]byte, 20<<20) // random: stays > one 16 MiB part after zstd
		_, _ = rand.Read(plain)
		obj, err := Seal(ctx, s, "t/i/backups/b/data", key, bytes.NewReader(plain))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(ctx, s, obj); err != nil {
			t.Fatalf("verify: %v", err)
		}
		rc, err := Open(ctx, s, obj, key)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("read back %d bytes, %v; want the %d bytes sealed", len(got), err, len(plain))
		}
		if _, err := Open(ctx, s, obj2(obj, "t/i/backups/none/data"), key); !errors.Is(err, ErrMissing) {
			t.Fatalf("open missing: %v, want ErrMissing", err)
		}
	})
}
