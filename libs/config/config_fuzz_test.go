package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/canopy-platform/canopy/libs/config"
)

// fuzzCfg has the field kinds service configs use, nested and in lists.
type fuzzCfg struct {
	svcCfg  `yaml:",inline"`
	Ratio   float64           `yaml:"ratio" env:"RATIO" default:"0.5"`
	Enabled bool              `yaml:"enabled" env:"ENABLED"`
	Labels  map[string]string `yaml:"labels"`
	Nodes   []httpCfg         `yaml:"nodes"`
	Secret  []byte            `yaml:"secret"`
	Limit   *uint16           `yaml:"limit"`
}

// FuzzLoad feeds arbitrary bytes as the YAML config file: Load must return
// either a config or an error, never panic or hang.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"workers: 8\nhttp:\n  timeout: 9s\n",
		"http:\n  addr: 127.0.0.1:9\nbrokers: [a:1, b:2]\nworkers: 2\nratio: 1e3\nenabled: yes\n",
		"labels: {a: b}\nnodes:\n  - addr: x\n    timeout: 1h\nsecret: !!binary aGVsbG8=\nlimit: 65535\n",
		"workers: 0\n",
		"workers: many\n",
		"unknown: field\n",
		"http: [1, 2]\n",
		"a: &a [*a]\n",
		"limit: -1\n",
		"---\n---\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var c fuzzCfg
		_ = config.Load(&c, config.Options{File: file, Environ: []string{}})
	})
}
