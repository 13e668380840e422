package saga

import (
	"github.com/canopy-platform/canopy/libs/nettune"

	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
)

// SysctlsFor is the kernel tuning recorded on every node of a mode.
func SysctlsFor(mode string) ([]instance.Setting, error) {
	m, err := nettune.ParseMode(mode)
	if err != nil {
		return nil, err
	}
	p, err := nettune.Default(m)
	if err != nil {
		return nil, err
	}
	out := make([]instance.Setting, 0, len(p.Sysctls))
	for _, st := range p.Sysctls {
		out = append(out, instance.Setting{Key: st.Key, Value: st.Value, Why: st.Why})
	}
	return out, nil
}
