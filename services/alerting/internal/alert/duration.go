package alert

import (
	"strings"
	"time"
)

// FormatDuration spells d as Prometheus and Alertmanager configurations do:
// "30s", "5m", "4h", "1h30m" (time.Duration.String without the zero units
// it appends).
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
