package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/config"
)

type httpCfg struct {
	Addr    string        `yaml:"addr" env:"ADDR" default:"127.0.0.1:8080"`
	Timeout time.Duration `yaml:"timeout" env:"TIMEOUT" default:"5s"`
}

type svcCfg struct {
	HTTP    httpCfg  `yaml:"http" envPrefix:"SVC_"`
	Brokers []string `yaml:"brokers" env:"KAFKA_BROKERS" default:"127.0.0.1:9092"`
	Workers int      `yaml:"workers" env:"WORKERS" default:"4"`
}

func (c *svcCfg) Validate() error {
	if c.Workers <= 0 {
		return errors.New("workers must be positive")
	}
	return nil
}

func TestLoadOrder(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("workers: 8\nhttp:\n  timeout: 9s\n"), 0o600))
	tests := []struct {
		name    string
		file    string
		environ []string
		want    svcCfg
		wantErr string
	}{
		{name: "defaults", environ: []string{}, want: svcCfg{HTTP: httpCfg{"127.0.0.1:8080", 5 * time.Second}, Brokers: []string{"127.0.0.1:9092"}, Workers: 4}},
		{name: "file over defaults", file: file, environ: []string{}, want: svcCfg{HTTP: httpCfg{"127.0.0.1:8080", 9 * time.Second}, Brokers: []string{"127.0.0.1:9092"}, Workers: 8}},
		{name: "env over file", file: file, environ: []string{"CANOPY_WORKERS=2", "CANOPY_SVC_ADDR=127.0.0.1:9", "CANOPY_KAFKA_BROKERS=a:1,b:2"},
			want: svcCfg{HTTP: httpCfg{"127.0.0.1:9", 9 * time.Second}, Brokers: []string{"a:1", "b:2"}, Workers: 2}},
		{name: "validation", environ: []string{"CANOPY_WORKERS=0"}, wantErr: "workers must be positive"},
		{name: "bad env value", environ: []string{"CANOPY_WORKERS=many"}, wantErr: "Workers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got svcCfg
			err := config.Load(&got, config.Options{File: tc.file, Environ: tc.environ})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestUnknownFileKeyFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("wrokers: 8\n"), 0o600))
	var got svcCfg
	require.ErrorContains(t, config.Load(&got, config.Options{File: file, Environ: []string{}}), "wrokers")
}
