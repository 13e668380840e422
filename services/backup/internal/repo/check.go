package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Verify reads a stored object through and checks it (size and SHA-256
// only; no key needed).
func Verify(ctx context.Context, b Blobs, obj backup.Object) error {
	rc, err := b.Get(ctx, obj.Key)
	if err != nil {
		return fmt.Errorf("verify %s: %w", obj.Key, err)
	}
	defer rc.Close()
	cr := newCheckReader(ctxReader{ctx, rc}, obj)
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("verify %s: %w", obj.Key, err)
	}
	return nil
}

// Copy copies stored objects as they are from one repository to another
// (the 3-2-1 copy), checking each against its entry: the source bytes are
// checked as they stream (a corrupt source fails the Put, so no copy
// appears), then the copy is read back and verified.
func Copy(ctx context.Context, from, to Blobs, objs ...backup.Object) error {
	for _, obj := range objs {
		if err := copyOne(ctx, from, to, obj); err != nil {
			return err
		}
	}
	return nil
}

func copyOne(ctx context.Context, from, to Blobs, obj backup.Object) error {
	rc, err := from.Get(ctx, obj.Key)
	if err != nil {
		return fmt.Errorf("copy %s: %w", obj.Key, err)
	}
	defer rc.Close()
	if err := to.Put(ctx, obj.Key, newCheckReader(rc, obj)); err != nil {
		return fmt.Errorf("copy %s: %w", obj.Key, err)
	}
	if err := Verify(ctx, to, obj); err != nil {
		return fmt.Errorf("copy %s: the copy: %w", obj.Key, err)
	}
	return nil
}

// checkReader passes stored bytes through and, instead of io.EOF, returns
// ErrCorrupt when they do not match the object's size and SHA-256.
type checkReader struct {
	r   io.Reader
	obj backup.Object
	sum hash.Hash
	n   int64
}

func newCheckReader(r io.Reader, obj backup.Object) *checkReader {
	return &checkReader{r: r, obj: obj, sum: sha256.New()}
}

func (c *checkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sum.Write(p[:n])
	c.n += int64(n)
	if c.n > c.obj.Size {
		return n, fmt.Errorf("%w: %s is longer than its %d bytes", ErrCorrupt, c.obj.Key, c.obj.Size)
	}
	if err == io.EOF {
		if c.n != c.obj.Size {
			return n, fmt.Errorf("%w: %s has %d bytes, manifest says %d", ErrCorrupt, c.obj.Key, c.n, c.obj.Size)
		}
		if got := hex.EncodeToString(c.sum.Sum(nil)); got != c.obj.SHA256 {
			return n, fmt.Errorf("%w: %s has sha256 %s, manifest says %s", ErrCorrupt, c.obj.Key, got, c.obj.SHA256)
		}
	}
	return n, err
}
