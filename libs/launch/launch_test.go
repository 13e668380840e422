package launch

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type svcConfig struct {
	Addr    string `yaml:"addr" env:"LAUNCHTEST_ADDR" default:"127.0.0.1:1"`
	Workers int    `yaml:"workers" env:"LAUNCHTEST_WORKERS" default:"2"`
}

func (c svcConfig) Validate() error {
	if c.Workers < 1 {
		return errors.New("workers must be positive")
	}
	return nil
}

type fakeService struct{ err error }

func (f fakeService) Run(context.Context) error { return f.err }

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("workers: 5\nlog:\n  level: warn\n"), 0o600))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("workers: 0\n"), 0o600))

	tests := []struct {
		name     string
		args     []string
		runErr   error
		buildErr error
		want     int
		wantCfg  svcConfig
	}{
		{name: "defaults, clean stop", want: 0, wantCfg: svcConfig{Addr: "127.0.0.1:1", Workers: 2}},
		{name: "file overrides defaults", args: []string{"-config", good}, want: 0, wantCfg: svcConfig{Addr: "127.0.0.1:1", Workers: 5}},
		{name: "invalid config", args: []string{"-config", bad}, want: 2},
		{name: "build fails", buildErr: errors.New("no db"), want: 1},
		{name: "run fails", runErr: errors.New("lost db"), want: 1},
		{name: "help", args: []string{"-h"}, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got svcConfig
			s := Spec[svcConfig]{
				Name:     "launchtest",
				Defaults: svcConfig{Addr: "127.0.0.1:1", Workers: 2},
				Build: func(c svcConfig, env Env) (Service, error) {
					got = c
					require.NotNil(t, env.Logger)
					require.NotNil(t, env.Registry)
					require.Nil(t, env.Publisher, "no Kafka func, no publisher")
					return fakeService{err: tc.runErr}, tc.buildErr
				},
			}
			var stderr bytes.Buffer
			require.Equal(t, tc.want, run(s, tc.args, &stderr), stderr.String())
			if tc.wantCfg != (svcConfig{}) {
				require.Equal(t, tc.wantCfg, got)
			}
		})
	}
}
