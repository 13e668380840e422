// Package config fills a component's typed Config struct once, in main: first
// the defaults from `default:"…"` tags, then an optional YAML file, then
// environment variables from `env:"…"` tags (with the CANOPY_ prefix), and
// finally calls Validate. It is not a live configuration store: components
// receive the resulting struct in their constructors and never read the
// environment themselves.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/caarlos0/env/v11"
	"gopkg.in/yaml.v3"
)

// DefaultPrefix is prepended to every env tag.
const DefaultPrefix = "CANOPY_"

// Validator is implemented by configs that can check themselves.
type Validator interface{ Validate() error }

// Options says where Load reads from.
type Options struct {
	// Prefix for environment variables; DefaultPrefix when empty.
	Prefix string
	// File is a YAML file to read; empty reads none.
	File string
	// Environ overrides the process environment (KEY=VALUE list), for tests.
	Environ []string
}

// Load fills dst (a pointer to a struct) from defaults, File and the
// environment, in that order, then validates it.
func Load(dst any, opts Options) error {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	// Defaults alone first, so a YAML file and env vars each override them.
	if err := env.ParseWithOptions(dst, env.Options{
		Prefix: prefix, DefaultValueTagName: "default", Environment: map[string]string{},
	}); err != nil {
		return fmt.Errorf("apply config defaults: %w", err)
	}
	if opts.File != "" {
		if err := loadFile(dst, opts.File); err != nil {
			return err
		}
	}
	environ := env.ToMap(os.Environ())
	if opts.Environ != nil {
		environ = env.ToMap(opts.Environ)
	}
	if err := env.ParseWithOptions(dst, env.Options{
		Prefix: prefix, DefaultValueTagName: "no-default-on-this-pass", Environment: environ,
	}); err != nil {
		return fmt.Errorf("read config from environment: %w", err)
	}
	if v, ok := dst.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("invalid config: %w", err)
		}
	}
	return nil
}

func loadFile(dst any, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	return nil
}

// FromArgs parses the standard flags of a Canopy binary (-config FILE) from
// args and loads dst. It returns flag.ErrHelp when -h was given.
func FromArgs(dst any, name string, args []string, out io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	file := fs.String("config", os.Getenv(DefaultPrefix+"CONFIG"), "YAML config `file` (env "+DefaultPrefix+"CONFIG); env vars override it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Load(dst, Options{File: *file})
}
