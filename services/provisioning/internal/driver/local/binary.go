package local

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sync"
)

var versionPattern = regexp.MustCompile(`\d+\.\d+\.\d+`)

// binary is a server program, found on PATH unless configured, whose
// version is read once from its --version output.
type binary struct {
	name string
	path string

	mu       sync.Mutex
	resolved string
	ver      string
}

// resolve returns the binary's path.
func (b *binary) resolve() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resolveLocked()
}

func (b *binary) resolveLocked() (string, error) {
	if b.resolved != "" {
		return b.resolved, nil
	}
	p := b.path
	if p == "" {
		p = b.name
	}
	found, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", b.name, err)
	}
	b.resolved = found
	return found, nil
}

// version returns the installed version ("10.11.19").
func (b *binary) version(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ver != "" {
		return b.ver, nil
	}
	p, err := b.resolveLocked()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, p, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", p, err)
	}
	v := versionPattern.Find(out)
	if v == nil {
		return "", fmt.Errorf("%s --version: no version in %q", p, out)
	}
	b.ver = string(v)
	return b.ver, nil
}
