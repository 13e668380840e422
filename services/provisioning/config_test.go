package provisioning

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/config"
)

func TestConfigSecretsKeys(t *testing.T) {
	keyA := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa}, 32))
	keyB := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xb}, 32))
	tests := []struct {
		name         string
		env          []string
		wantPrevious int
		wantInterval time.Duration
		wantErr      string
	}{
		{"no previous keys", nil, 0, 10 * time.Minute, ""},
		{"two previous keys", []string{"CANOPY_SECRETS_KEYS_PREVIOUS=" + keyA + "," + keyB}, 2, 10 * time.Minute, ""},
		{"reseal only at start", []string{"CANOPY_PROVISIONING_RESEAL_INTERVAL=0s"}, 0, 0, ""},
		{"bad previous key", []string{"CANOPY_SECRETS_KEYS_PREVIOUS=" + keyA + ",not-a-key"}, 0, 0, "CANOPY_SECRETS_KEYS_PREVIOUS"},
		{"negative interval", []string{"CANOPY_PROVISIONING_RESEAL_INTERVAL=-1s"}, 0, 0, "reseal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			env := append([]string{"CANOPY_INTERNAL_SECRET=" + testSecret, "CANOPY_SECRETS_KEY=" + keyB}, tt.env...)
			err := config.Load(&cfg, config.Options{Environ: env})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.SecretsKeysPrevious) != tt.wantPrevious || cfg.Reseal.Interval != tt.wantInterval {
				t.Fatalf("previous keys %d, reseal interval %s; want %d, %s", len(cfg.SecretsKeysPrevious), cfg.Reseal.Interval, tt.wantPrevious, tt.wantInterval)
			}
		})
	}
}

func TestConfigRouter(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		yaml    string
		want    RouterConfig
		wantErr string
	}{
		{name: "defaults", want: RouterConfig{Host: "127.0.0.1", Ports: "16000-16999", SentinelPort: 26380}},
		{name: "set", env: []string{"CANOPY_PROVISIONING_ROUTER_HOST=router.canopy.svc", "CANOPY_PROVISIONING_ROUTER_PORTS=20000-20001", "CANOPY_PROVISIONING_ROUTER_SENTINEL_PORT=26379"},
			want: RouterConfig{Host: "router.canopy.svc", Ports: "20000-20001", SentinelPort: 26379}},
		{name: "disabled in yaml", yaml: "router:\n  host: \"\"\n", want: RouterConfig{Host: "", Ports: "16000-16999", SentinelPort: 26380}},
		{name: "one port", env: []string{"CANOPY_PROVISIONING_ROUTER_PORTS=20000-20000"}, wantErr: "CANOPY_PROVISIONING_ROUTER_PORTS"},
		{name: "reversed", env: []string{"CANOPY_PROVISIONING_ROUTER_PORTS=20001-20000"}, wantErr: "router.ports"},
		{name: "privileged", env: []string{"CANOPY_PROVISIONING_ROUTER_PORTS=80-2000"}, wantErr: "router.ports"},
		{name: "beyond 65535", env: []string{"CANOPY_PROVISIONING_ROUTER_PORTS=65000-65536"}, wantErr: "router.ports"},
		{name: "not a range", env: []string{"CANOPY_PROVISIONING_ROUTER_PORTS=16000"}, wantErr: "router.ports"},
		{name: "sentinel port", env: []string{"CANOPY_PROVISIONING_ROUTER_SENTINEL_PORT=0"}, wantErr: "router.sentinel_port"},
		{name: "host with a port", env: []string{"CANOPY_PROVISIONING_ROUTER_HOST=router:16000"}, wantErr: "router.host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			env := append([]string{"CANOPY_INTERNAL_SECRET=" + testSecret}, tt.env...)
			opts := config.Options{Environ: env}
			if tt.yaml != "" {
				path := filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				opts.File = path
			}
			err := config.Load(&cfg, opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Router != tt.want {
				t.Fatalf("router %+v, want %+v", cfg.Router, tt.want)
			}
		})
	}
}
