package local

import (
	"context"
	"fmt"
	"os/exec"
	"sync"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// binary is a server program, found on PATH unless configured, whose
// version is read once from its --version output.
type binary struct {
	name string
	path string
	// engine is the engine whose server this is; its --version output is
	// parsed as that engine's (driver.ParseVersion).
	engine driver.Engine

	mu       sync.Mutex
	resolved string
	ver      driver.EngineVersion
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
	v, err := b.engineVersion(ctx)
	return v.Version, err
}

// engineVersion returns the installed build, reading --version on the
// first call only: the binary does not change under a running driver.
func (b *binary) engineVersion(ctx context.Context) (driver.EngineVersion, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ver.Version != "" {
		return b.ver, nil
	}
	p, err := b.resolveLocked()
	if err != nil {
		return driver.EngineVersion{}, err
	}
	out, err := exec.CommandContext(ctx, p, "--version").Output()
	if err != nil {
		return driver.EngineVersion{}, fmt.Errorf("%s --version: %w", p, err)
	}
	v, err := driver.ParseVersion(b.engine, string(out))
	if err != nil {
		return driver.EngineVersion{}, fmt.Errorf("%s --version: %w", p, err)
	}
	b.ver = v
	return b.ver, nil
}
