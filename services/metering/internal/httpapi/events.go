package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/metering/internal/ingest"
	"github.com/canopy-platform/canopy/services/metering/internal/meter"
)

// Media types of CloudEvents' structured JSON mode.
const (
	ContentTypeEvent = "application/cloudevents+json"
	ContentTypeBatch = "application/cloudevents-batch+json"
)

// accepted is the answer to an ingestion.
type accepted struct {
	Accepted int `json:"accepted"`
}

// postEvents accepts one CloudEvent or a batch, all or nothing: every
// event is validated and tenant-checked before any is published.
func (a *API) postEvents(w http.ResponseWriter, r *http.Request) {
	received := a.now().UTC()
	p, ok := httpx.Authorize(w, r, tenancy.ActionWrite, "usage events")
	if !ok {
		return
	}
	body, prob := a.readBody(r)
	if prob != nil {
		httpx.WriteProblem(w, r, prob)
		return
	}
	batch, prob := batchMode(r.Header.Get("Content-Type"), body)
	if prob != nil {
		httpx.WriteProblem(w, r, prob)
		return
	}
	evs, err := meter.ParseEvents(body, batch, a.maxBatch, received)
	if err != nil {
		var fe meter.FieldErrors
		if errors.As(err, &fe) {
			httpx.WriteProblem(w, r, httpx.BadRequest("invalid usage events; none was accepted", fieldErrors(fe)...))
			return
		}
		httpx.WriteProblem(w, r, httpx.BadRequest("invalid usage events; none was accepted: "+err.Error()))
		return
	}
	if prob := a.checkTenants(r, p, evs, batch); prob != nil {
		httpx.WriteProblem(w, r, prob)
		return
	}
	if err := a.ingest.Publish(r.Context(), evs, received); err != nil {
		if errors.Is(err, ingest.ErrTooLarge) {
			httpx.WriteProblem(w, r, httpx.BadRequest("an event is larger than one record may be; none was accepted",
				httpx.FieldError{Field: "body", Reason: "an event is too large"}))
			return
		}
		a.log.WarnContext(r.Context(), "publish usage events", "events", len(evs), "err", err)
		// Some events may have been written: a retry of the same batch is
		// safe, the ledger counts each (source, id) once.
		prob := httpx.NewProblem(http.StatusServiceUnavailable, "usage events could not be handed to the ledger; retry the same request")
		prob.Extensions = map[string]any{"retryable": true}
		w.Header().Set("Retry-After", "1")
		httpx.WriteProblem(w, r, prob)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, accepted{Accepted: len(evs)})
}

// readBody reads at most maxBody bytes; a larger body is a 400 naming "body".
func (a *API) readBody(r *http.Request) ([]byte, *httpx.Problem) {
	tooLarge := httpx.BadRequest(fmt.Sprintf("the request body is larger than %d bytes; none was accepted", a.maxBody),
		httpx.FieldError{Field: "body", Reason: fmt.Sprintf("must be at most %d bytes; split the batch", a.maxBody)})
	if r.ContentLength > a.maxBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, a.maxBody+1))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		// The router's own limit is below ours.
		return nil, tooLarge
	case err != nil:
		return nil, httpx.BadRequest("the request body could not be read: " + err.Error())
	case int64(len(body)) > a.maxBody:
		return nil, tooLarge
	}
	return body, nil
}

// batchMode tells a batch from a single event: by the CloudEvents media
// type, or for plain JSON by whether the body is an array.
func batchMode(contentType string, body []byte) (bool, *httpx.Problem) {
	mt := "application/json"
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return false, httpx.NewProblem(http.StatusUnsupportedMediaType, "unreadable Content-Type: "+err.Error())
		}
	}
	switch mt {
	case ContentTypeEvent:
		return false, nil
	case ContentTypeBatch:
		return true, nil
	case "application/json":
		for _, c := range body {
			switch c {
			case ' ', '\t', '\r', '\n':
				continue
			}
			return c == '[', nil
		}
		return false, nil
	}
	return false, httpx.NewProblem(http.StatusUnsupportedMediaType,
		"Content-Type must be "+ContentTypeEvent+", "+ContentTypeBatch+" or application/json")
}

// checkTenants applies the tenant rules to evs in place: a tenant's events
// are its own (tenantid filled in; another tenant's is 403); a
// platform-admin names the tenant of each event; no event may name as its
// subject an instance of another tenant than its own (403).
func (a *API) checkTenants(r *http.Request, p tenancy.Principal, evs []meter.Event, batch bool) *httpx.Problem {
	field := func(i int, name string) string {
		if batch {
			return fmt.Sprintf("[%d].%s", i, name)
		}
		return name
	}
	var bad, forbidden []httpx.FieldError
	admin := p.Role == tenancy.RolePlatformAdmin
	for i := range evs {
		e := &evs[i]
		switch {
		case admin && e.TenantID == "":
			bad = append(bad, httpx.FieldError{Field: field(i, "tenantid"), Reason: "a platform-admin must name the tenant of each event"})
		case admin:
			if _, err := tenancy.Parse(e.TenantID); err != nil {
				bad = append(bad, httpx.FieldError{Field: field(i, "tenantid"), Reason: "not a tenant id"})
			}
		case e.TenantID != "" && e.TenantID != string(p.Tenant):
			forbidden = append(forbidden, httpx.FieldError{Field: field(i, "tenantid"), Reason: "a tenant may only report its own usage"})
		default:
			e.TenantID = string(p.Tenant)
		}
	}
	if len(bad) > 0 {
		return httpx.BadRequest("invalid usage events; none was accepted", bad...)
	}
	var subjects []string
	seen := make(map[string]bool)
	for _, e := range evs {
		if e.Subject != "" && !seen[e.Subject] {
			seen[e.Subject] = true
			subjects = append(subjects, e.Subject)
		}
	}
	if len(subjects) > 0 {
		owners, err := a.usage.InstanceTenants(r.Context(), subjects)
		if err != nil {
			a.log.ErrorContext(r.Context(), "check usage event subjects", "err", err)
			return httpx.NewProblem(http.StatusInternalServerError, "internal error; quote the request id when reporting it")
		}
		for i, e := range evs {
			if owner, ok := owners[e.Subject]; ok && owner != e.TenantID {
				forbidden = append(forbidden, httpx.FieldError{Field: field(i, "subject"), Reason: "names an instance of another tenant"})
			}
		}
	}
	if len(forbidden) > 0 {
		prob := httpx.NewProblem(http.StatusForbidden, "usage events of another tenant; none was accepted")
		prob.Errors = forbidden
		return prob
	}
	return nil
}
