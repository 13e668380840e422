// Package statedir keeps Canopy's local state directory (.canopy: the
// embedded broker's data, generated keys and secrets, instance data dirs)
// private to the user running Canopy: no group or other permission bits on
// anything in it. Canopy's own code creates directories 0700 and files 0600;
// this package creates the directory itself and tightens what others left
// looser (an older Canopy, the embedded broker's 0755/0644, engine
// processes' own defaults). It is not a general file API.
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Modes of what Canopy itself creates in the state directory.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// private are the permission bits nothing in the state directory may have.
const private fs.FileMode = 0o077

// Ensure creates dir (and missing parents) with DirMode and tightens dir and
// everything below it, logging one line when it changed anything. It is for
// the owner of the whole directory (the all-in-one binary, the embedded
// broker's data dir).
func Ensure(dir string, logger *slog.Logger) error {
	return ensure(dir, logger, nil)
}

// EnsureOwned is Ensure for a component that shares dir with others: it
// tightens dir itself and only the entries named in owned (relative to dir,
// each with everything below it, if they exist), leaving other components'
// entries, such as a running broker's data, to them.
func EnsureOwned(dir string, logger *slog.Logger, owned ...string) error {
	return ensure(dir, logger, owned)
}

func ensure(dir string, logger *slog.Logger, owned []string) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("create state dir %s: %w", dir, err)
	}
	var n int
	var err error
	if owned == nil {
		n, err = Tighten(dir)
	} else {
		n, err = tightenOwned(dir, owned)
	}
	if err != nil {
		return err
	}
	if n > 0 {
		logger.Warn("state dir had group/other permissions; removed them", "dir", dir, "paths", n)
	}
	return nil
}

func tightenOwned(dir string, owned []string) (int, error) {
	n := 0
	info, err := os.Stat(dir)
	if err != nil {
		return 0, fmt.Errorf("tighten state dir %s: %w", dir, err)
	}
	if perm := info.Mode().Perm(); perm&private != 0 {
		if err := os.Chmod(dir, perm&^private); err != nil {
			return 0, fmt.Errorf("tighten state dir %s: %w", dir, err)
		}
		n++
	}
	for _, rel := range owned {
		path := filepath.Join(dir, rel)
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		m, err := Tighten(path)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Tighten removes group and other permission bits from dir and the
// directories and regular files below it and returns how many paths it
// changed. Symbolic links are neither followed nor changed; sockets and
// other special files are left as their servers made them (mariadbd makes
// its socket 0777 on purpose), since the 0700 directories above them
// already keep other users out. Paths that vanish during the walk (files a
// running broker or engine replaces) are skipped.
func Tighten(dir string) (int, error) {
	changed := 0
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !checked(e) {
			return nil
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		perm := info.Mode().Perm()
		if perm&private == 0 {
			return nil
		}
		if err := os.Chmod(path, perm&^private); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		changed++
		return nil
	})
	if err != nil {
		return changed, fmt.Errorf("tighten state dir %s: %w", dir, err)
	}
	return changed, nil
}

// checked reports whether e is a directory or regular file, what the state
// dir's modes are about.
func checked(e fs.DirEntry) bool { return e.Type()&^fs.ModeDir == 0 }

// Loose returns the directories and regular files under dir (dir included)
// that have group or other permission bits, for tests and checks.
func Loose(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !checked(e) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&private != 0 {
			out = append(out, fmt.Sprintf("%s (%s)", path, info.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", dir, err)
	}
	return out, nil
}
