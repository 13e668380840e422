package provisioning

import (
	"bytes"
	"encoding/base64"
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
