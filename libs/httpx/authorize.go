package httpx

import (
	"fmt"
	"net/http"

	"github.com/canopy-platform/canopy/libs/tenancy"
)

// Authorize returns the request's principal when its role may do action;
// otherwise it answers 401 (no identity) or 403 (naming what, the
// resource) and reports false.
func Authorize(w http.ResponseWriter, r *http.Request, action tenancy.Action, what string) (tenancy.Principal, bool) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok {
		WriteProblem(w, r, NewProblem(http.StatusUnauthorized, "missing identity"))
		return p, false
	}
	if !tenancy.Can(p.Role, action) {
		WriteProblem(w, r, NewProblem(http.StatusForbidden, fmt.Sprintf("role %s may not %s %s", p.Role, action, what)))
		return p, false
	}
	return p, true
}
