package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// FS is a Blobs in a local directory (the default: <state>/backups).
// Objects are files at their key's path; a Put writes a temporary file
// (".tmp-<name>-*", never listed) in the same directory and renames it
// into place after fsync, so a reader sees a whole object or none.
type FS struct{ dir string }

var _ Blobs = (*FS)(nil)

// NewFS opens (creating, 0700) a directory repository.
func NewFS(dir string) (*FS, error) {
	if dir == "" {
		return nil, errors.New("open directory repository: no directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open directory repository %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open directory repository %s: %w", abs, err)
	}
	return &FS{dir: abs}, nil
}

// Dir returns the repository's root directory.
func (f *FS) Dir() string { return f.dir }

func (f *FS) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.dir, filepath.FromSlash(key)), nil
}

// Put implements Blobs.
func (f *FS) Put(ctx context.Context, key string, r io.Reader) error {
	p, err := f.path(key)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.put(ctx, p, r); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (f *FS) put(ctx context.Context, p string, r io.Reader) error {
	dir := filepath.Dir(p)
	tmp, err := f.createTemp(dir, filepath.Base(p))
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	done = true
	// The rename is durable only once the directory entry is.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	return nil
}

// tempPrefix starts the names of the temporary files of Puts of the
// object named base: Delete finds a crashed Put's leftovers by it.
func tempPrefix(base string) string { return ".tmp-" + base + "-" }

// createTemp makes the directory and a temporary file for the object
// named base in it; a concurrent Delete may remove the just-made (still
// empty) directory, so it retries.
func (f *FS) createTemp(dir, base string) (*os.File, error) {
	var lastErr error
	for range 3 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("make directory: %w", err)
		}
		tmp, err := os.CreateTemp(dir, tempPrefix(base)+"*")
		if err == nil {
			return tmp, nil // CreateTemp makes it 0600
		}
		lastErr = err
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	return nil, fmt.Errorf("create temporary file: %w", lastErr)
}

// removeTemps removes the temporary files of Puts of the object named
// base in dir.
func removeTemps(dir, base string) error {
	des, err := os.ReadDir(dir)
	if notExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list temporary files: %w", err)
	}
	for _, d := range des {
		if strings.HasPrefix(d.Name(), tempPrefix(base)) {
			if err := os.Remove(filepath.Join(dir, d.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove temporary file: %w", err)
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get implements Blobs.
func (f *FS) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	file, err := os.Open(p)
	if notExist(err) {
		return nil, fmt.Errorf("get %s: %w", key, ErrMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		file.Close()
		return nil, fmt.Errorf("get %s: %w", key, ErrMissing)
	}
	return file, nil
}

// notExist reports a missing path, including one whose parent is a file
// (key "a/b" exists and "a/b/c" is asked for): that object is missing too.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Delete implements Blobs. It also removes the temporary files of Puts of
// key that a killed process left behind (a half-written object is the
// key's too, though never listed). Directories left empty are removed up
// to the root so that retention does not leave a tree of empty
// directories.
func (f *FS) Delete(ctx context.Context, key string) error {
	p, err := f.path(key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := removeTemps(filepath.Dir(p), filepath.Base(p)); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for dir := filepath.Dir(p); dir != f.dir && strings.HasPrefix(dir, f.dir); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or gone): stop
			break
		}
	}
	return nil
}

// List implements Blobs: prefix is a plain string prefix of keys, as in S3.
func (f *FS) List(ctx context.Context, prefix string) ([]string, error) {
	// Walk only the deepest directory the prefix names.
	base := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = prefix[:i]
		if err := ValidKey(base); err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
	}
	root := filepath.Join(f.dir, filepath.FromSlash(base))
	var keys []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && notExist(err) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}
