package dispatch

import (
	"testing"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// Group keys are built with appendLabels so that Put allocates no label
// set; they must read exactly as the model's (and Alertmanager's) String.
func TestAppendLabelsIsLabelSetString(t *testing.T) {
	for _, ls := range []alert.LabelSet{
		{},
		{"alertname": "NodeDown"},
		{"v": "x\"y\n", "alertname": "A", "tenant": "acme"},
		{"b": "", "a": "ünïcode", "c": `back\slash`},
	} {
		if got, want := string(appendLabels(nil, ls, sortedNames(ls))), ls.String(); got != want {
			t.Errorf("appendLabels(%v) = %s, want %s", map[string]string(ls), got, want)
		}
	}
}
