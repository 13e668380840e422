// Package repo is the backup repository: a blob store (a local directory
// by default, S3-compatible storage in production) and the sealed object
// format every backup and binlog segment is written in: zstd-compressed,
// then encrypted with AES-256-GCM in chunks under a per-object data key
// that the secrets keyring wraps, with the SHA-256 of the stored bytes
// kept in the manifest so that a corrupted or truncated object is found
// before anything is restored from it.
//
// It knows nothing of backups, instances or schedules: keys are opaque
// paths chosen by the engine.
package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors callers branch on.
var (
	// ErrMissing: the object is not in the repository.
	ErrMissing = errors.New("object missing from the repository")
	// ErrCorrupt: the object's bytes do not match its checksum, or do not
	// decrypt or decompress.
	ErrCorrupt = errors.New("object corrupt")
	// ErrInvalidKey: a key that could escape the repository or is not a
	// plain slash-separated path.
	ErrInvalidKey = errors.New("invalid object key")
)

// Blobs stores opaque objects by key ("tenant/instance/backups/id/data").
type Blobs interface {
	// Put stores the whole of r under key; the object is visible only once
	// complete (a crashed Put leaves nothing readable under key).
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens an object; ErrMissing when there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes an object; a missing one is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
}

// ValidKey reports whether key is usable in every Blobs: slash-separated,
// relative, without empty, "." or ".." segments, and without segments
// starting with "." (the directory repository keeps its temporary files
// under such names).
func ValidKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w %q: backslash or NUL", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w %q: empty segment or absolute path", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w %q: %q segment", ErrInvalidKey, key, seg)
		case strings.HasPrefix(seg, "."):
			return fmt.Errorf("%w %q: segment starts with a dot", ErrInvalidKey, key)
		}
	}
	return nil
}

// ctxReader stops a long copy once its context is done, so a cancelled
// backup does not keep streaming into the repository.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
