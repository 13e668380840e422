package plan

import (
	"regexp"
	"slices"
	"strings"
)

// Build is an engine build some host can run, as provisioning reports it
// (GET /internal/v1/engines).
type Build struct {
	// Engine is the engine it runs.
	Engine Engine
	// Series is the major.minor a user orders by: "10.11".
	Series string
	// Label is the engine's own name of the build: "mariadb-10.11.19".
	Label string
}

// Series returns the major.minor of a catalog version: "10.11" of "10.11",
// of "10.11.19" and of the older "mariadb-10.11"; "" when v has none. It
// matches provisioning's reading of an ordered version.
func Series(v string) string {
	m := seriesPattern.FindStringSubmatch(strings.TrimPrefix(v, "mariadb-"))
	if m == nil {
		return ""
	}
	return m[1]
}

var seriesPattern = regexp.MustCompile(`^(\d+\.\d+)(\.\d+)?$`)

// Offer is what a plan (or a service) offers given what the hosts run.
type Offer struct {
	// Versions are the versions some host runs, in the plan's order.
	Versions []string
	// DefaultVersion is the plan's default when a host runs it, else the
	// first of Versions, else "".
	DefaultVersion string
	// Labels names the build that runs each of Versions
	// ("10.11" → "mariadb-10.11.19"); nil when the builds are unknown.
	Labels map[string]string
	// Unavailable are the versions listed that no host runs.
	Unavailable []string
}

// offer filters versions by builds of engine e; known false (provisioning
// has not said what runs) offers every version as listed.
func offer(e Engine, versions []string, def string, builds []Build, known bool) Offer {
	if !known {
		return Offer{Versions: slices.Clone(versions), DefaultVersion: def}
	}
	out := Offer{Versions: []string{}, Labels: map[string]string{}}
	for _, v := range versions {
		i := slices.IndexFunc(builds, func(b Build) bool { return b.Engine == e && b.Series != "" && b.Series == Series(v) })
		if i < 0 {
			out.Unavailable = append(out.Unavailable, v)
			continue
		}
		out.Versions = append(out.Versions, v)
		out.Labels[v] = builds[i].Label
	}
	switch {
	case slices.Contains(out.Versions, def):
		out.DefaultVersion = def
	case len(out.Versions) > 0:
		out.DefaultVersion = out.Versions[0]
	}
	return out
}

// Offer is what p offers when the hosts run builds; known false means
// nobody said what runs, and p's versions are offered as stored.
func (p Plan) Offer(builds []Build, known bool) Offer {
	return offer(p.Engine, p.Versions, p.DefaultVersion, builds, known)
}

// Offer is what the service offers when the hosts run builds: its versions
// some host runs, one per major.minor (the first listed, so "10.11" and
// not its older name "mariadb-10.11"); known false lists them all.
func (s Service) Offer(builds []Build, known bool) Offer {
	o := offer(s.Engine, s.Versions, "", builds, known)
	if !known {
		return o
	}
	seen := map[string]bool{}
	o.Versions = slices.DeleteFunc(o.Versions, func(v string) bool {
		dup := seen[Series(v)]
		seen[Series(v)] = true
		if dup {
			delete(o.Labels, v)
		}
		return dup
	})
	o.Unavailable, o.DefaultVersion = nil, ""
	return o
}
