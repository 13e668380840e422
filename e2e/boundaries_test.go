package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The boundary tests check the import rules of CONVENTIONS.md on the real
// import graph (`go list -json` over the workspace, offline and without
// compiling anything):
//
//   - core-no-transport: a core package — a domain package (pure rules and
//     state machines) or an engine (the service's long-running logic, which
//     may log and count but reaches the outside only through ports it
//     declares) — imports no HTTP, Kafka or SQL package. Core packages are
//     listed in corePackages below; a package of a new service becomes one
//     by carrying the line "canopy:domain" or "canopy:engine" in its package
//     comment. Only a package's own imports count: libs/tenancy and
//     third-party packages are judged by the list, not by what they import.
//   - service-isolation: a service never imports another service's
//     packages; only the all-in-one module imports services, and then only
//     their top-level package (Config, New, Run).
//   - libs-below-services: libs and e2e never import a service.
//   - inbound-adapters-are-leaves: a service's inbound adapters (httpapi,
//     consumers) are wired by the service's top-level package and imported by
//     nothing else, so no other package depends on a transport's types.
//   - domain-depends-on-core: within its service a domain package imports
//     only other core packages, so no adapter (and nothing an adapter links,
//     e.g. a database driver) reaches the domain through a shared type.
//   - core-declared: every service (all-in-one aside) declares at least one
//     domain package, so a new service states where its rules live.

const modulePath = "github.com/canopy-platform/canopy"

// coreKind says what a core package is.
type coreKind string

const (
	kindDomain coreKind = "domain"
	kindEngine coreKind = "engine"
)

// corePackages are the packages that must stay free of transports, by
// import path below the module path.
var corePackages = map[string]coreKind{
	"services/alerting/internal/alert":        kindDomain,
	"services/alerting/internal/dispatch":     kindDomain,
	"services/backup/internal/backup":         kindDomain,
	"services/catalog/internal/brokercred":    kindDomain,
	"services/catalog/internal/plan":          kindDomain,
	"services/failover/internal/topology":     kindDomain,
	"services/gateway/internal/apikey":        kindDomain,
	"services/gateway/internal/audit":         kindDomain,
	"services/gateway/internal/tenant":        kindDomain,
	"services/healthcheck/internal/detector":  kindDomain,
	"services/healthcheck/internal/probe":     kindDomain,
	"services/healthcheck/internal/target":    kindDomain,
	"services/healthcheck/internal/monitor":   kindEngine,
	"services/healthcheck/internal/scheduler": kindEngine,
	"services/metering/internal/meter":        kindDomain,
	"services/provisioning/internal/instance": kindDomain,
	"services/provisioning/internal/tunables": kindDomain,
	"services/router/internal/table":          kindDomain,
	"services/scheduling/internal/inventory":  kindDomain,
	"services/scheduling/internal/placement":  kindDomain,
	"services/scheduling/internal/scheduler":  kindEngine,
}

// transportImports are the import paths (and, ending in "/", path prefixes)
// a core package must not import.
var transportImports = []string{
	"net/http", "net/http/",
	"database/sql", "database/sql/",
	"github.com/go-chi/",
	"github.com/segmentio/kafka-go", "github.com/segmentio/kafka-go/",
	"github.com/twmb/franz-go/",
	"github.com/go-sql-driver/",
	"github.com/redis/go-redis/",
	"github.com/go-mysql-org/",
	"google.golang.org/grpc", "google.golang.org/grpc/",
	modulePath + "/libs/eventbus", modulePath + "/libs/eventbus/",
	modulePath + "/libs/store", modulePath + "/libs/store/",
	modulePath + "/libs/httpx", modulePath + "/libs/httpx/",
	modulePath + "/libs/devkafka",
	modulePath + "/libs/launch",
	modulePath + "/libs/openapitest",
}

// inboundAdapters are the package names of a service's inbound adapters.
var inboundAdapters = map[string]bool{"httpapi": true, "consumers": true}

// goPackage is what the rules need of one package.
type goPackage struct {
	ImportPath string   // full import path
	Imports    []string // direct imports of the non-test files
	Marker     coreKind // from a "canopy:domain|engine" line in the package comment
}

// violation is one broken rule.
type violation struct {
	Package, Import, Rule, Why string
}

func (v violation) String() string {
	if v.Import == "" {
		return fmt.Sprintf("%s: rule %s: %s", v.Package, v.Rule, v.Why)
	}
	return fmt.Sprintf("%s imports %s: rule %s: %s", v.Package, v.Import, v.Rule, v.Why)
}

// serviceOf returns the service a repository-relative path belongs to.
func serviceOf(rel string) (string, bool) {
	rest, ok := strings.CutPrefix(rel, "services/")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, "/")
	return name, name != ""
}

func isTransport(imp string) bool {
	for _, t := range transportImports {
		if imp == t || (strings.HasSuffix(t, "/") && strings.HasPrefix(imp, t)) {
			return true
		}
	}
	return false
}

// checkBoundaries applies the rules to pkgs; core lists the declared core
// packages (repository-relative import paths).
func checkBoundaries(pkgs []goPackage, core map[string]coreKind) []violation {
	var out []violation
	hasDomain := map[string]bool{}
	services := map[string]bool{}
	kinds := map[string]coreKind{}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, modulePath+"/")
		if k, declared := core[rel]; declared {
			kinds[rel] = k
		} else if p.Marker != "" {
			kinds[rel] = p.Marker
		}
	}
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, modulePath+"/")
		if !ok {
			continue
		}
		kind := kinds[rel]
		svc, inService := serviceOf(rel)
		if inService {
			services[svc] = true
			if kind == kindDomain {
				hasDomain[svc] = true
			}
		}
		for _, imp := range p.Imports {
			if kind != "" && isTransport(imp) {
				out = append(out, violation{p.ImportPath, imp, "core-no-transport",
					fmt.Sprintf("%s packages must not import HTTP, Kafka or SQL packages; declare a port in the package and translate in an adapter", kind)})
			}
			irel, ours := strings.CutPrefix(imp, modulePath+"/")
			if !ours {
				continue
			}
			isvc, toService := serviceOf(irel)
			if !toService {
				continue
			}
			switch {
			case !inService:
				out = append(out, violation{p.ImportPath, imp, "libs-below-services",
					"libs and e2e never import a service"})
			case svc == "allinone":
				if irel != "services/"+isvc {
					out = append(out, violation{p.ImportPath, imp, "service-isolation",
						"the all-in-one binary imports only each service's top-level package (Config, New, Run)"})
				}
			case isvc != svc:
				out = append(out, violation{p.ImportPath, imp, "service-isolation",
					"a service never imports another service's packages; share api/ or libs/ instead"})
			case kind == kindDomain && kinds[irel] == "":
				out = append(out, violation{p.ImportPath, imp, "domain-depends-on-core",
					"a domain package imports only core packages of its service; move the types it needs into a domain package"})
			case inboundAdapters[filepath.Base(irel)] && rel != "services/"+svc && !strings.HasPrefix(rel, "services/"+svc+"/cmd/"):
				out = append(out, violation{p.ImportPath, imp, "inbound-adapters-are-leaves",
					"httpapi and consumers are wired by the service's top-level package and imported by nothing else; move shared types to the domain"})
			}
		}
	}
	for _, svc := range sortedKeys(services) {
		if svc != "allinone" && !hasDomain[svc] {
			out = append(out, violation{Package: modulePath + "/services/" + svc, Rule: "core-declared",
				Why: "the service declares no domain package: list it in corePackages (e2e/boundaries_test.go) or put \"canopy:domain\" in its package comment"})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// listedPackage is what `go list -json` reports of one package.
type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Error      *struct{ Err string }
}

// goList runs `go list -json` over the workspace; it compiles nothing.
func goList(t *testing.T, root string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,GoFiles,Imports,Error", modulePath+"/...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// listPackages returns the workspace's packages with their core markers.
func listPackages(t *testing.T, root string) []goPackage {
	t.Helper()
	var pkgs []goPackage
	for _, p := range goList(t, root) {
		marker, err := coreMarker(p.Dir, p.GoFiles)
		if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, goPackage{ImportPath: p.ImportPath, Imports: p.Imports, Marker: marker})
	}
	return pkgs
}

// coreMarker returns the kind a package declares in its package comment
// ("canopy:domain" or "canopy:engine" on a line of its own), if any.
func coreMarker(dir string, files []string) (coreKind, error) {
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", f, err)
		}
		if file.Doc == nil {
			continue
		}
		for _, line := range strings.Split(file.Doc.Text(), "\n") {
			switch strings.TrimSpace(line) {
			case "canopy:domain":
				return kindDomain, nil
			case "canopy:engine":
				return kindEngine, nil
			}
		}
	}
	return "", nil
}

func TestBoundaries(t *testing.T) {
	root := repoRoot(t)
	pkgs := listPackages(t, root)
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[strings.TrimPrefix(p.ImportPath, modulePath+"/")] = true
	}
	for _, rel := range sortedKeys(corePackages) {
		if !seen[rel] {
			t.Errorf("corePackages lists %s, which is not a package of the workspace (renamed or removed?)", rel)
		}
	}
	for _, v := range checkBoundaries(pkgs, corePackages) {
		t.Error(v)
	}
}

func TestBoundaryRules(t *testing.T) {
	const m = modulePath + "/"
	core := map[string]coreKind{
		"services/a/internal/dom": kindDomain,
		"services/a/internal/eng": kindEngine,
		"services/b/internal/dom": kindDomain,
	}
	base := []goPackage{
		{ImportPath: m + "services/a/internal/dom", Imports: []string{"errors", "time", m + "libs/tenancy"}},
		{ImportPath: m + "services/a/internal/eng", Imports: []string{"log/slog", m + "services/a/internal/dom", "github.com/prometheus/client_golang/prometheus"}},
		{ImportPath: m + "services/a/internal/httpapi", Imports: []string{"net/http", "github.com/go-chi/chi/v5", m + "services/a/internal/dom"}},
		{ImportPath: m + "services/a", Imports: []string{m + "services/a/internal/httpapi", m + "services/a/internal/consumers", m + "libs/eventbus"}},
		{ImportPath: m + "services/b/internal/dom"},
		{ImportPath: m + "services/allinone", Imports: []string{m + "services/a", m + "services/b"}},
		{ImportPath: m + "libs/eventbus", Imports: []string{"github.com/segmentio/kafka-go"}},
	}
	tests := []struct {
		name string
		add  goPackage
		want []string // "package imports import rule", or "package rule" for package-wide rules
	}{
		{name: "the clean graph passes"},
		{name: "domain imports net/http", add: goPackage{ImportPath: m + "services/a/internal/dom", Imports: []string{"net/http"}},
			want: []string{"services/a/internal/dom imports net/http core-no-transport"}},
		{name: "domain imports chi", add: goPackage{ImportPath: m + "services/a/internal/dom", Imports: []string{"github.com/go-chi/chi/v5/middleware"}},
			want: []string{"services/a/internal/dom imports github.com/go-chi/chi/v5/middleware core-no-transport"}},
		{name: "engine imports the event bus", add: goPackage{ImportPath: m + "services/a/internal/eng", Imports: []string{m + "libs/eventbus"}},
			want: []string{"services/a/internal/eng imports " + m + "libs/eventbus core-no-transport"}},
		{name: "domain imports kafka-go", add: goPackage{ImportPath: m + "services/b/internal/dom", Imports: []string{"github.com/segmentio/kafka-go"}},
			want: []string{"services/b/internal/dom imports github.com/segmentio/kafka-go core-no-transport"}},
		{name: "domain imports franz-go", add: goPackage{ImportPath: m + "services/b/internal/dom", Imports: []string{"github.com/twmb/franz-go/pkg/kgo"}},
			want: []string{"services/b/internal/dom imports github.com/twmb/franz-go/pkg/kgo core-no-transport"}},
		{name: "domain imports database/sql", add: goPackage{ImportPath: m + "services/b/internal/dom", Imports: []string{"database/sql"}},
			want: []string{"services/b/internal/dom imports database/sql core-no-transport"}},
		{name: "domain imports the mysql driver", add: goPackage{ImportPath: m + "services/b/internal/dom", Imports: []string{"github.com/go-sql-driver/mysql"}},
			want: []string{"services/b/internal/dom imports github.com/go-sql-driver/mysql core-no-transport"}},
		{name: "domain imports libs/store", add: goPackage{ImportPath: m + "services/b/internal/dom", Imports: []string{m + "libs/store"}},
			want: []string{"services/b/internal/dom imports " + m + "libs/store core-no-transport"}},
		{name: "domain imports libs/httpx", add: goPackage{ImportPath: m + "services/b/internal/dom", Imports: []string{m + "libs/httpx"}},
			want: []string{"services/b/internal/dom imports " + m + "libs/httpx core-no-transport"}},
		{name: "a marked package of a new service is checked", add: goPackage{ImportPath: m + "services/c/internal/order", Imports: []string{"net/http/httputil"}, Marker: kindDomain},
			want: []string{"services/c/internal/order imports net/http/httputil core-no-transport"}},
		{name: "a new service without a domain package", add: goPackage{ImportPath: m + "services/c/internal/httpapi", Imports: []string{"net/http"}},
			want: []string{"services/c core-declared"}},
		{name: "an adapter may import transports", add: goPackage{ImportPath: m + "services/a/internal/mysqlrepo", Imports: []string{"database/sql", m + "libs/store", m + "services/a/internal/dom"}}},
		{name: "a service imports another service's internals", add: goPackage{ImportPath: m + "services/a/internal/eng", Imports: []string{m + "services/b/internal/dom"}},
			want: []string{"services/a/internal/eng imports " + m + "services/b/internal/dom service-isolation"}},
		{name: "a service imports another service's top level", add: goPackage{ImportPath: m + "services/a/internal/httpapi", Imports: []string{m + "services/b"}},
			want: []string{"services/a/internal/httpapi imports " + m + "services/b service-isolation"}},
		{name: "all-in-one reaches below a service's top level", add: goPackage{ImportPath: m + "services/allinone", Imports: []string{m + "services/b/internal/dom"}},
			want: []string{"services/allinone imports " + m + "services/b/internal/dom service-isolation"}},
		{name: "libs import a service", add: goPackage{ImportPath: m + "libs/tenancy", Imports: []string{m + "services/a"}},
			want: []string{"libs/tenancy imports " + m + "services/a libs-below-services"}},
		{name: "e2e imports a service", add: goPackage{ImportPath: m + "e2e", Imports: []string{m + "services/b"}},
			want: []string{"e2e imports " + m + "services/b libs-below-services"}},
		{name: "an outbound client imports the service's httpapi", add: goPackage{ImportPath: m + "services/a/internal/planclient", Imports: []string{"net/http", m + "services/a/internal/httpapi"}},
			want: []string{"services/a/internal/planclient imports " + m + "services/a/internal/httpapi inbound-adapters-are-leaves"}},
		{name: "domain imports an adapter of its service", add: goPackage{ImportPath: m + "services/b/internal/dom", Imports: []string{m + "services/b/internal/probe"}},
			want: []string{"services/b/internal/dom imports " + m + "services/b/internal/probe domain-depends-on-core"}},
		{name: "domain imports another domain package", add: goPackage{ImportPath: m + "services/a/internal/dom2", Imports: []string{m + "services/a/internal/dom"}, Marker: kindDomain}},
		{name: "an engine imports an adapter of its service", add: goPackage{ImportPath: m + "services/a/internal/eng", Imports: []string{m + "services/a/internal/probe"}}},
		{name: "a command imports the consumers", add: goPackage{ImportPath: m + "services/a/cmd/a", Imports: []string{m + "services/a/internal/consumers"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := append([]goPackage(nil), base...)
			if tc.add.ImportPath != "" {
				pkgs = append(pkgs, tc.add)
			}
			var got []string
			for _, v := range checkBoundaries(pkgs, core) {
				s := strings.TrimPrefix(v.Package, m) + " " + v.Rule
				if v.Import != "" {
					s = strings.TrimPrefix(v.Package, m) + " imports " + v.Import + " " + v.Rule
				}
				got = append(got, s)
				if !strings.Contains(v.String(), v.Package) || !strings.Contains(v.String(), v.Rule) || !strings.Contains(v.String(), v.Import) {
					t.Errorf("message %q does not name the package, the import and the rule", v)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("violations:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCoreMarker(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.go": "// Package order is the order domain.\n//\n// canopy:domain\npackage order\n",
		"b.go": "// Package run runs things; canopy:domain is not a line of its own here.\npackage run\n",
		"c.go": "// Package eng is an engine.\n//\n// canopy:engine\npackage eng\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file string
		want coreKind
	}{{"a.go", kindDomain}, {"b.go", ""}, {"c.go", kindEngine}} {
		got, err := coreMarker(dir, []string{tc.file})
		if err != nil || got != tc.want {
			t.Errorf("coreMarker(%s) = %q, %v; want %q", tc.file, got, err, tc.want)
		}
	}
}
