package launch

import (
	"errors"
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/libs/eventbus"
	"github.com/canopy-platform/canopy/libs/obs"
)

func TestSecretsValidate(t *testing.T) {
	tests := []struct {
		name    string
		secrets Secrets
		want    []string
	}{
		{"valid", Secrets{InternalSecret: "0123456789abcdef"}, nil},
		{"valid with previous", Secrets{InternalSecret: "0123456789abcdef", InternalSecretPrevious: "fedcba9876543210"}, nil},
		{"missing", Secrets{}, []string{"CANOPY_INTERNAL_SECRET"}},
		{"short previous", Secrets{InternalSecret: "0123456789abcdef", InternalSecretPrevious: "short"}, []string{"CANOPY_INTERNAL_SECRET_PREVIOUS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.secrets.Validate()
			if (err != nil) != (tt.want != nil) {
				t.Fatalf("Validate() = %v, want error naming %v", err, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to name %s", err, w)
				}
			}
		})
	}
}

func TestConfigError(t *testing.T) {
	if err := ConfigError("widget", nil, nil); err != nil {
		t.Fatalf("ConfigError of nils = %v, want nil", err)
	}
	a, b := errors.New("a"), errors.New("b")
	err := ConfigError("widget", a, nil, b)
	if !errors.Is(err, a) || !errors.Is(err, b) || !strings.HasPrefix(err.Error(), "widget config: ") {
		t.Fatalf("ConfigError = %v, want both errors under \"widget config: \"", err)
	}
}

type okConfig struct{}

func (okConfig) Validate() error { return nil }

func TestNewServiceRequiresDeps(t *testing.T) {
	// Env without a publisher gives Deps with a nil interface, not a typed nil.
	deps := Env{Logger: obs.NopLogger(), Registry: obs.NewRegistry()}.Deps()
	if deps.Publisher != nil {
		t.Fatalf("Env.Deps().Publisher = %#v, want nil", deps.Publisher)
	}
	if _, err := NewService("widget", okConfig{}, deps); err == nil || err.Error() != "widget: nil event publisher" {
		t.Fatalf("NewService without publisher = %v, want widget: nil event publisher", err)
	}
	deps.Publisher = &eventbus.Publisher{}
	if _, err := NewService("widget", okConfig{}, deps); err != nil {
		t.Fatalf("NewService = %v", err)
	}
}
