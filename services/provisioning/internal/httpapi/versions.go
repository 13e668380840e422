package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/canopy-platform/canopy/libs/httpx"
	"github.com/canopy-platform/canopy/libs/tenancy"

	"github.com/canopy-platform/canopy/services/provisioning/internal/catalogclient"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// EnginesPath is the internal view of what the drivers can run: each
// engine build with its label and the major.minor a user orders by, and
// whether the driver reports its builds at all ("reported": false for a
// driver that does not; orders are then not checked and the catalog
// lists its plans unfiltered). The catalog reads it to offer only those
// versions. It holds no secret, so any signed service identity may read
// it; the gateway does not route it.
const EnginesPath = "/internal/v1/engines"

// ProblemVersionUnavailable is the problem type of an order for a version
// no host can run.
const ProblemVersionUnavailable = "https://canopy.dev/problems/version-unavailable"

// WithEngines makes orders check the version against what v can run;
// without it (a driver that does not report) the plan's versions are
// trusted as the catalog lists them.
func (h *Handler) WithEngines(v driver.Versions) { h.engines = v }

// engineJSON is one engine build in the internal engines view.
type engineJSON struct {
	Engine  string `json:"engine"`
	Flavor  string `json:"flavor"`
	Version string `json:"version"`
	Series  string `json:"series"`
	Label   string `json:"label"`
}

func (h *Handler) listEngines(w http.ResponseWriter, r *http.Request) {
	if _, ok := tenancy.PrincipalFrom(r.Context()); !ok {
		httpx.WriteProblem(w, r, httpx.NewProblem(http.StatusUnauthorized, "missing identity"))
		return
	}
	items := []engineJSON{}
	for _, v := range h.engineVersions(r.Context()) {
		items = append(items, engineJSON{Engine: string(v.Engine), Flavor: v.Flavor, Version: v.Version, Series: v.Series(), Label: v.Label()})
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"reported": h.engines != nil, "items": items})
}

// engineVersions is what the driver runs; nil when it does not say.
func (h *Handler) engineVersions(ctx context.Context) []driver.EngineVersion {
	if h.engines == nil {
		return nil
	}
	return h.engines.EngineVersions(ctx)
}

// offering is a version of a plan that some host can run.
type offering struct {
	// Version is the plan's own name of it ("10.11", "7.0").
	Version string
	// Build is the build that runs it.
	Build driver.EngineVersion
}

// offered returns the plan's versions that a build in avail runs (same
// engine, same major.minor), in the plan's order. avail nil means the
// driver does not report: every version is taken as offered.
func offered(plan catalogclient.Plan, avail []driver.EngineVersion) []offering {
	var out []offering
	for _, v := range plan.Versions {
		if avail == nil {
			out = append(out, offering{Version: v})
			continue
		}
		for _, b := range avail {
			if string(b.Engine) == plan.Engine && b.Series() != "" && b.Series() == driver.Series(v) {
				out = append(out, offering{Version: v, Build: b})
				break
			}
		}
	}
	return out
}

// chooseVersion resolves the ordered version against the plan and what
// can run: empty takes the plan's default when it is offered, else the
// first offered one; a version is matched by name or by its major.minor
// ("10.11" orders a plan's "mariadb-10.11"). The result is the plan's own
// name of the version. Anything else is a 422 on the version field that
// lists the versions on offer.
func chooseVersion(plan catalogclient.Plan, version string, avail []driver.EngineVersion) (string, *httpx.Problem) {
	offers := offered(plan, avail)
	if version == "" {
		if i := slices.IndexFunc(offers, func(o offering) bool { return o.Version == plan.DefaultVersion }); i >= 0 {
			return offers[i].Version, nil
		}
		if len(offers) > 0 {
			return offers[0].Version, nil
		}
	}
	for _, o := range offers {
		if o.Version == version || (driver.Series(version) != "" && driver.Series(version) == driver.Series(o.Version)) {
			return o.Version, nil
		}
	}
	names := make([]string, 0, len(offers))
	for _, o := range offers {
		if o.Build.Version != "" {
			names = append(names, fmt.Sprintf("%s (%s)", o.Version, o.Build.Label()))
		} else {
			names = append(names, o.Version)
		}
	}
	reason := "no version of this plan can run on any host now"
	if len(names) > 0 {
		reason = "must be one of the available versions: " + strings.Join(names, ", ")
	}
	detail := fmt.Sprintf("version %q is not available for plan %s; available: %s", version, plan.Name, strings.Join(names, ", "))
	if len(names) == 0 {
		detail = fmt.Sprintf("no version of plan %s is available", plan.Name)
	}
	p := httpx.Unprocessable(detail, httpx.FieldError{Field: "version", Reason: reason})
	p.Type = ProblemVersionUnavailable
	return "", p
}
