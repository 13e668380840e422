package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestArchitectureListsEveryLib keeps the libraries table of
// docs/architecture.md in step with libs/: every package directory directly
// under libs/ must have a row (its name in backquotes at the start of a row).
func TestArchitectureListsEveryLib(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(root, "libs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		gofiles, _ := filepath.Glob(filepath.Join(root, "libs", e.Name(), "*.go"))
		if len(gofiles) == 0 {
			continue
		}
		if !strings.Contains(string(doc), "\n| `"+e.Name()+"` |") {
			t.Errorf("docs/architecture.md has no row for libs/%s in its libraries table", e.Name())
		}
	}
}

// notConfigVars are CANOPY_* names used outside the binaries' Config
// structs: compose file interpolations and the config file flag's variable.
var notConfigVars = map[string]string{
	"CANOPY_CONFIG":              "the -config flag's variable (libs/config)",
	"CANOPY_TAG":                 "docker-compose.yml: the image tag",
	"CANOPY_MYSQL_ROOT_PASSWORD": "docker-compose.yml: the MySQL container's root password",
	"CANOPY_ARTIFACTS":           "e2e: where the browser tests save screenshots (docs/portal.md)",
	"CANOPY_UPDATE_DOC_IMAGES":   "e2e: the tenant portal scenarios rewrite docs/img/portal-*.png (docs/portal.md)",
	"CANOPY_WIDGET_ADDR":         "docs/new-service.md: the example skeleton's listen address (libs/launch/internal/widget)",
}

// TestNamedVariablesExist fails when the docs, docker-compose.yml or the
// Kubernetes manifests name a CANOPY_* variable that no binary reads (a typo
// there is silently ignored at run time), apart from notConfigVars and the
// listen addresses of planned services that have no module yet.
func TestNamedVariablesExist(t *testing.T) {
	root := repoRoot(t)
	ref, err := os.ReadFile(filepath.Join(root, configDocPath))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range canopyVar.FindAllString(string(ref), -1) {
		known[m] = true
	}
	for name := range servicePorts {
		if !hasServiceModule(root, name) {
			known[addrVar(name)] = true
		}
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "docker-compose.yml"))
	err = filepath.WalkDir(filepath.Join(root, "k8s"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range canopyVar.FindAllString(string(b), -1) {
			if !known[m] && notConfigVars[m] == "" {
				rel, _ := filepath.Rel(root, f)
				t.Errorf("%s names %s, which no binary reads (see %s)", rel, m, configDocPath)
			}
		}
	}
}

var canopyVar = regexp.MustCompile(`\bCANOPY_[A-Z0-9_]*[A-Z0-9]\b`)
