package webhook

import (
	"maps"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/dispatch"
)

// Version is the webhook payload version Alertmanager sends.
const Version = "4"

// Message is Alertmanager's webhook payload, version "4" (its
// notify/webhook.Message: template.Data plus version, groupKey and
// truncatedAlerts), so receivers written for Alertmanager parse it as is.
type Message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert in a Message.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // 0001-01-01T00:00:00Z while firing, as Alertmanager
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Build turns a notification into the payload (status firing if any alert
// fires; common labels/annotations; maxAlerts>0 truncates and counts
// truncatedAlerts). As in Alertmanager, truncation comes first, so status
// and the common labels describe the alerts actually sent, and an alert
// still firing at n.At shows a zero endsAt even when it has a timeout.
func Build(n dispatch.Notification, externalURL string, maxAlerts int) Message {
	alerts := n.Alerts
	truncated := 0
	if maxAlerts > 0 && len(alerts) > maxAlerts {
		truncated = len(alerts) - maxAlerts
		alerts = alerts[:maxAlerts]
	}
	m := Message{
		Version:           Version,
		GroupKey:          n.GroupKey,
		TruncatedAlerts:   truncated,
		Status:            string(alert.StatusResolved),
		Receiver:          n.ReceiverName,
		GroupLabels:       copyLabels(n.GroupLabels),
		CommonLabels:      map[string]string{},
		CommonAnnotations: map[string]string{},
		ExternalURL:       externalURL,
		Alerts:            make([]Alert, 0, len(alerts)),
	}
	for _, a := range alerts {
		pa := payloadAlert(a, n.At)
		if pa.Status == string(alert.StatusFiring) {
			m.Status = string(alert.StatusFiring)
		}
		m.Alerts = append(m.Alerts, pa)
	}
	if len(alerts) > 0 {
		m.CommonLabels = common(alerts, func(a *alert.Alert) alert.LabelSet { return a.Labels })
		m.CommonAnnotations = common(alerts, func(a *alert.Alert) alert.LabelSet { return a.Annotations })
	}
	return m
}

// payloadAlert maps one alert as Alertmanager's template.Data does.
func payloadAlert(a *alert.Alert, now time.Time) Alert {
	pa := Alert{
		Status:       string(alert.StatusFiring),
		Labels:       copyLabels(a.Labels),
		Annotations:  copyLabels(a.Annotations),
		StartsAt:     a.StartsAt.UTC(),
		GeneratorURL: a.GeneratorURL,
		Fingerprint:  a.Labels.Fingerprint().String(),
	}
	if a.Resolved(now) {
		pa.Status = string(alert.StatusResolved)
		pa.EndsAt = a.EndsAt.UTC()
		if a.EndsAt.IsZero() {
			// A resolved state without an end (a rule resolved it): the
			// notification's time is when it was seen ended.
			pa.EndsAt = now.UTC()
		}
	}
	return pa
}

// common returns the label pairs every alert shares.
func common(alerts []*alert.Alert, set func(*alert.Alert) alert.LabelSet) map[string]string {
	out := copyLabels(set(alerts[0]))
	for _, a := range alerts[1:] {
		if len(out) == 0 {
			break
		}
		ls := set(a)
		for k, v := range out {
			if w, ok := ls[k]; !ok || w != v {
				delete(out, k)
			}
		}
	}
	return out
}

// copyLabels copies ls into a non-nil map (the payload has {} not null).
func copyLabels(ls alert.LabelSet) map[string]string {
	out := make(map[string]string, len(ls))
	maps.Copy(out, ls)
	return out
}
