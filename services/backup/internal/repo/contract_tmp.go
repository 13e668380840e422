// Package repo is the backup repository: a blob store (a local directory
// by default, S3-compatible storage in production) and the sealed object
// format every backup and binlog segment is written in: zstd-compressed,
// then encrypted with AES-256-GCM in chunks under a per-object data key
// that the secrets keyring wraps, with the SHA-256 of the stored bytes
// kept in the manifest so that a corrupted or truncated object is found
// before anything is restored from it.
package repo

import (
	"context"
	"errors"
	"io"

	"github.com/canopy-platform/canopy/libs/secrets"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

// Errors callers branch on.
var (
	// ErrMissing: the object is not in the repository.
	ErrMissing = errors.New("object missing from the repository")
	// ErrCorrupt: the object's bytes do not match its checksum, or do not
	// decrypt or decompress.
	ErrCorrupt = errors.New("object corrupt")
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

// FS is a Blobs in a local directory (the default: <state>/backups).
type FS struct{ dir string }

// NewFS opens (creating, 0700) a directory repository.
func NewFS(dir string) (*FS, error) { panic("contract") }

// S3Config configures an S3-compatible repository.
type S3Config struct {
	Endpoint  string // host:port
	Bucket    string
	Prefix    string
	Region    string
	AccessKey string
	SecretKey string
	UseTLS    bool
}

// S3 is a Blobs in an S3-compatible bucket (minio-go).
type S3 struct{}

// NewS3 connects to the bucket (it must exist).
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) { panic("contract") }

// NewDataKey returns a fresh random 32-byte data key.
func NewDataKey() ([]byte, error) { panic("contract") }

// WrapKey seals a data key with the keyring; aad binds it to its owner
// (the backup id or segment key).
func WrapKey(box *secrets.Box, dataKey []byte, aad string) ([]byte, error) { panic("contract") }

// UnwrapKey opens a wrapped data key.
func UnwrapKey(box *secrets.Box, wrapped []byte, aad string) ([]byte, error) { panic("contract") }

// Seal compresses and encrypts everything read from r into the object
// key of b, and returns the object's manifest entry.
func Seal(ctx context.Context, b Blobs, key string, dataKey []byte, r io.Reader) (backup.Object, error) {
	panic("contract")
}

// Open returns the plaintext of a sealed object, checking as it reads:
// ErrMissing, or ErrCorrupt (naming the key) for altered or truncated
// bytes, which Read returns at the latest at the end of the stream, before
// io.EOF; a caller that reads to EOF without error has every byte intact.
func Open(ctx context.Context, b Blobs, obj backup.Object, dataKey []byte) (io.ReadCloser, error) {
	panic("contract")
}

// Verify reads a stored object through and checks it (size and SHA-256
// only; no key needed).
func Verify(ctx context.Context, b Blobs, obj backup.Object) error { panic("contract") }

// Copy copies stored objects as they are from one repository to another
// (the 3-2-1 copy), checking each against its entry.
func Copy(ctx context.Context, from, to Blobs, objs ...backup.Object) error { panic("contract") }
