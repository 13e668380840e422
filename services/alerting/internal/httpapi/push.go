package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/engine"
)

// postableAlert is Alertmanager v2's postableAlert, what Prometheus' notifier
// sends. A zero time is an absent one.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

// pushAlerts is POST /api/v2/alerts as Alertmanager serves it: a JSON
// array of alerts; each valid one is accepted (best effort, as Alertmanager
// does) and the invalid ones are named in a 400. A tenant's alerts carry
// its tenant label whatever they say; a platform-admin's keep their labels
// (with ?tenant= they are that tenant's).
func (a *API) pushAlerts(w http.ResponseWriter, r *http.Request) {
	s, ok := authorize(w, r, tenancy.ActionWrite, "alerts")
	if !ok {
		return
	}
	if prob := checkJSONType(r.Header.Get("Content-Type")); prob != nil {
		httpx.WriteProblem(w, r, prob)
		return
	}
	var in []postableAlert
	if prob := a.decodePush(w, r, &in); prob != nil {
		httpx.WriteProblem(w, r, prob)
		return
	}
	now := a.now().UTC()
	valid := make([]*alert.Alert, 0, len(in))
	var fields []httpx.FieldError
	for i, pa := range in {
		al, fe := a.toAlert(pa, s.tenant, now)
		if len(fe) > 0 {
			for _, f := range fe {
				fields = append(fields, httpx.FieldError{Field: fmt.Sprintf("[%d].%s", i, f.Field), Reason: f.Reason})
			}
			continue
		}
		valid = append(valid, al)
	}
	if len(valid) > 0 {
		if err := a.engine.Push(r.Context(), valid); err != nil {
			if errors.Is(err, engine.ErrStopped) { // a standby, or stopping: the sender retries
				w.Header().Set("Retry-After", "1")
				httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusServiceUnavailable, "the alerting engine is not active; retry"))
				return
			}
			a.internalError(w, r, "push alerts", err)
			return
		}
	}
	if len(fields) > 0 {
		detail := fmt.Sprintf("%d of %d alerts are invalid and were not accepted; the %d valid ones were", len(in)-len(valid), len(in), len(valid))
		httpx.WriteProblem(w, r, httpx.BadRequest(detail, fields...))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// checkJSONType accepts what Prometheus and amtool send: JSON, or no type.
func checkJSONType(ct string) *httpx.Problem {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return httpx.NewProblem(http.StatusUnsupportedMediaType, "request body must be application/json")
	}
	return nil
}

// decodePush reads the array, at most maxPushBody bytes. Unknown members
// are ignored, as Alertmanager ignores them.
func (a *API) decodePush(w http.ResponseWriter, r *http.Request, dst *[]postableAlert) *httpx.Problem {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.maxPushBody))
	err := dec.Decode(dst)
	var (
		maxErr  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case err == nil:
		if dec.More() {
			return httpx.BadRequest("request body must contain a single JSON array")
		}
		return nil
	case errors.As(err, &maxErr):
		return httpx.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxErr.Limit))
	case errors.Is(err, io.EOF):
		return httpx.BadRequest("request body is empty; a JSON array of alerts is required")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return httpx.BadRequest("the body must be a JSON array of alerts",
			httpx.FieldError{Field: field, Reason: "has the wrong type: " + typeErr.Value})
	default:
		return httpx.BadRequest("request body is not a JSON array of alerts: " + err.Error())
	}
}

// toAlert applies Alertmanager's defaults and validation to one pushed
// alert: empty label values are dropped; a missing startsAt is now (or
// endsAt when only that is set); a missing endsAt is now plus the resolve
// timeout, so an alert no longer pushed resolves by itself; labels must be
// present and valid; startsAt may not be after endsAt. tenant, when set,
// replaces the tenant label.
func (a *API) toAlert(pa postableAlert, tenant string, now time.Time) (*alert.Alert, []httpx.FieldError) {
	var fields []httpx.FieldError
	bad := func(f, why string) { fields = append(fields, httpx.FieldError{Field: f, Reason: why}) }
	labels := make(alert.LabelSet, len(pa.Labels)+1)
	for _, name := range sortedKeys(pa.Labels) {
		v := pa.Labels[name]
		switch {
		case v == "":
			continue
		case !alert.ValidLabelName(name):
			bad("labels."+name, "invalid label name")
		case !utf8.ValidString(v):
			bad("labels."+name, "value is not valid UTF-8")
		}
		labels[name] = v
	}
	if tenant != "" {
		delete(labels, alert.LabelTenant)
	}
	if len(labels) == 0 {
		bad("labels", "at least one label pair is required")
	}
	if tenant != "" {
		labels[alert.LabelTenant] = tenant
	}
	annotations := make(alert.LabelSet, len(pa.Annotations))
	for _, name := range sortedKeys(pa.Annotations) {
		v := pa.Annotations[name]
		switch {
		case !alert.ValidLabelName(name):
			bad("annotations."+name, "invalid annotation name")
		case !utf8.ValidString(v):
			bad("annotations."+name, "value is not valid UTF-8")
		}
		annotations[name] = v
	}
	if pa.GeneratorURL != "" {
		if _, err := url.Parse(pa.GeneratorURL); err != nil {
			bad("generatorURL", "not a URL")
		}
	}
	al := &alert.Alert{Labels: labels, Annotations: annotations, StartsAt: pa.StartsAt.UTC(), EndsAt: pa.EndsAt.UTC(),
		GeneratorURL: pa.GeneratorURL, UpdatedAt: now}
	if pa.StartsAt.IsZero() {
		al.StartsAt = now
		if !pa.EndsAt.IsZero() {
			al.StartsAt = al.EndsAt
		}
	}
	if pa.EndsAt.IsZero() {
		al.EndsAt = now.Add(a.resolveTimeout)
	}
	if al.EndsAt.Before(al.StartsAt) {
		bad("endsAt", "must not be before startsAt")
	}
	al.State = alert.StateFiring
	if !al.EndsAt.After(now) {
		al.State = alert.StateResolved
	}
	return al, fields
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
