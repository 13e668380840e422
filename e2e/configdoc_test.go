package e2e

import (
	"bytes"
	"cmp"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
)

// docs/configuration.md lists every environment variable each binary reads,
// with its full name. libs/config composes names from nested envPrefix tags
// (CANOPY_ + PROVISIONING_ + PLACEMENT_TIMEOUT), so a name never appears
// whole in the code; this test reads the Config structs from source (this
// module links no service code), derives the names the way libs/config's
// loader (caarlos0/env) does, and fails when the document differs.
// Regenerate it with `make config-docs` (go test ./e2e -run ConfigDoc -update).

const configDocPath = "docs/configuration.md"

// configRoot is one struct a binary loads with libs/config.
type configRoot struct {
	Pkg  string // import path below the module path
	Type string
	YAML string // the struct's path in the config file; "-" when it is not read from the file
}

// configBinary is one command and the config structs it loads.
type configBinary struct {
	Name    string
	Command string // directory of its main package
	Roots   []configRoot
	Note    string
}

var (
	logRoot   = configRoot{"libs/obs", "LogConfig", "log"}
	traceRoot = configRoot{"libs/obs", "TraceConfig", "trace"}
)

// customMains are the commands that do not use libs/launch, with the
// structs their main loads; every other command under services/*/cmd/ must
// build a launch.Spec[T], whose file holds T inline next to obs.LogConfig
// ("log") and obs.TraceConfig ("trace"). A command that uses libs/launch is
// read from its main even when it is listed here.
var customMains = map[string]configBinary{
	"services/allinone/cmd/canopy": {Name: "all-in-one", Roots: []configRoot{{"services/allinone", "Config", ""},
		{"libs/obs", "LogConfig", "-"}, {"libs/obs", "TraceConfig", "-"}},
		Note: "The all-in-one process also reads every service's variables below, as the service's own binary would, " +
			"except what it wires itself: listen addresses, MySQL DSN and database names, Kafka brokers, the internal " +
			"secret, the state directory and the URLs services use to reach each other."},
	"services/gateway/cmd/gateway":         {Roots: []configRoot{{"services/gateway/cmd/gateway", "fileConfig", ""}}},
	"services/healthcheck/cmd/healthcheck": {Roots: []configRoot{{"services/healthcheck/cmd/healthcheck", "appConfig", ""}}},
}

// configBinaries returns every command under services/*/cmd/ with the
// structs it loads, the all-in-one first.
func configBinaries(r *configReader, root string) ([]configBinary, error) {
	cmds, err := filepath.Glob(filepath.Join(root, "services", "*", "cmd", "*"))
	if err != nil {
		return nil, err
	}
	var bins []configBinary
	for _, dir := range cmds {
		rel, _ := filepath.Rel(root, dir)
		rel = filepath.ToSlash(rel)
		if _, ok := r.files[rel]; !ok {
			continue // not a Go package
		}
		bin := customMains[rel]
		bin.Command = rel
		if bin.Name == "" {
			bin.Name = filepath.Base(rel)
		}
		spec, err := r.launchSpec(rel)
		if err != nil {
			return nil, err
		}
		switch {
		case spec != nil:
			bin.Roots = []configRoot{*spec, logRoot, traceRoot}
		case bin.Roots == nil:
			return nil, fmt.Errorf("%s: cannot tell what its main loads: use libs/launch or list it in customMains (e2e/configdoc_test.go)", rel)
		}
		bins = append(bins, bin)
	}
	first := func(b configBinary) int {
		if b.Name == "all-in-one" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(bins, func(a, b configBinary) int { return cmp.Compare(first(a), first(b)) })
	return bins, nil
}

// launchSpec returns the T of a launch.Spec[T] composite literal in the
// command's main package, or nil when it has none.
func (r *configReader) launchSpec(cmd string) (*configRoot, error) {
	fset := token.NewFileSet()
	for _, fn := range r.files[cmd] {
		f, err := parser.ParseFile(fset, fn, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", fn, err)
		}
		imports := map[string]string{}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			local := filepath.Base(p)
			if imp.Name != nil {
				local = imp.Name.Name
			}
			imports[local] = p
		}
		var found *configRoot
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok || found != nil {
				return found == nil
			}
			idx, ok := lit.Type.(*ast.IndexExpr)
			if !ok || types.ExprString(idx.X) != "launch.Spec" || imports["launch"] != modulePath+"/libs/launch" {
				return true
			}
			if sel, ok := idx.Index.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok {
					found = &configRoot{Pkg: strings.TrimPrefix(imports[x.Name], modulePath+"/"), Type: sel.Sel.Name}
				}
			}
			return found == nil
		})
		if found != nil {
			return found, nil
		}
	}
	return nil, nil
}

// envVar is one documented environment variable.
type envVar struct {
	Name, Type, Default, YAML, Doc string
	HasDefault                     bool
}

// srcFile is a parsed file with its imports by local name.
type srcFile struct {
	file    *ast.File
	imports map[string]string
}

// typeDecl is a type declared in a parsed package.
type typeDecl struct {
	spec *ast.TypeSpec
	file *srcFile
	pkg  string
}

// configReader reads config structs from Go source.
type configReader struct {
	files map[string][]string // import path → absolute file names
	decls map[string]map[string]typeDecl
}

func newConfigReader(files map[string][]string) *configReader {
	return &configReader{files: files, decls: map[string]map[string]typeDecl{}}
}

func (r *configReader) lookup(pkg, name string) (typeDecl, error) {
	decls, ok := r.decls[pkg]
	if !ok {
		names, known := r.files[pkg]
		if !known {
			return typeDecl{}, fmt.Errorf("package %s is not in the workspace", pkg)
		}
		decls = map[string]typeDecl{}
		fset := token.NewFileSet()
		for _, fn := range names {
			f, err := parser.ParseFile(fset, fn, nil, parser.ParseComments)
			if err != nil {
				return typeDecl{}, fmt.Errorf("parse %s: %w", fn, err)
			}
			sf := &srcFile{file: f, imports: map[string]string{}}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				local := filepath.Base(p)
				if imp.Name != nil {
					local = imp.Name.Name
				}
				sf.imports[local] = p
			}
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, s := range gd.Specs {
					ts := s.(*ast.TypeSpec)
					decls[ts.Name.Name] = typeDecl{spec: ts, file: sf, pkg: pkg}
				}
			}
		}
		r.decls[pkg] = decls
	}
	d, ok := decls[name]
	if !ok {
		return typeDecl{}, fmt.Errorf("type %s not found in %s", name, pkg)
	}
	return d, nil
}

// structOf returns the struct a type expression names when the type is
// declared in the workspace, following named types to their definition.
func (r *configReader) structOf(expr ast.Expr, in *srcFile, pkg string) (*ast.StructType, *srcFile, string, error) {
	for i := 0; i < 10; i++ {
		switch e := expr.(type) {
		case *ast.StructType:
			return e, in, pkg, nil
		case *ast.ParenExpr:
			expr = e.X
			continue
		case *ast.Ident:
			if types.Universe.Lookup(e.Name) != nil {
				return nil, nil, "", nil
			}
			d, err := r.lookup(pkg, e.Name)
			if err != nil {
				return nil, nil, "", err
			}
			expr, in, pkg = d.spec.Type, d.file, d.pkg
			continue
		case *ast.SelectorExpr:
			x, ok := e.X.(*ast.Ident)
			if !ok {
				return nil, nil, "", nil
			}
			path, ok := in.imports[x.Name]
			if !ok {
				return nil, nil, "", fmt.Errorf("%s: unknown import %s", pkg, x.Name)
			}
			rel, ours := strings.CutPrefix(path, modulePath+"/")
			if !ours {
				return nil, nil, "", nil // outside the workspace: a leaf (time.Duration, url.URL, ...)
			}
			d, err := r.lookup(rel, e.Sel.Name)
			if err != nil {
				return nil, nil, "", err
			}
			expr, in, pkg = d.spec.Type, d.file, d.pkg
			continue
		}
		return nil, nil, "", nil
	}
	return nil, nil, "", fmt.Errorf("%s: type definitions nest too deep", pkg)
}

// vars lists the environment variables of root, named with prefix.
func (r *configReader) vars(root configRoot, prefix string) ([]envVar, error) {
	d, err := r.lookup(root.Pkg, root.Type)
	if err != nil {
		return nil, err
	}
	st, in, pkg, err := r.structOf(d.spec.Type, d.file, d.pkg)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%s.%s is not a struct", root.Pkg, root.Type)
	}
	var out []envVar
	err = r.walk(st, in, pkg, prefix, root.YAML, &out)
	return out, err
}

// walk follows caarlos0/env's traversal: unexported fields are skipped, a
// field's own key is prefix + its env tag, `env:"-"` ignores the field, and
// a struct-typed field is entered with prefix + its envPrefix tag.
func (r *configReader) walk(st *ast.StructType, in *srcFile, pkg, prefix, yamlPath string, out *[]envVar) error {
	for _, f := range st.Fields.List {
		tag := reflect.StructTag("")
		if f.Tag != nil {
			s, _ := strconv.Unquote(f.Tag.Value)
			tag = reflect.StructTag(s)
		}
		names := make([]string, 0, len(f.Names))
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
		if len(names) == 0 { // embedded: the field is named for its type
			t := f.Type
			if s, ok := t.(*ast.StarExpr); ok {
				t = s.X
			}
			switch e := t.(type) {
			case *ast.Ident:
				names = []string{e.Name}
			case *ast.SelectorExpr:
				names = []string{e.Sel.Name}
			default:
				return fmt.Errorf("%s: unsupported embedded field %s", pkg, types.ExprString(f.Type))
			}
		}
		for _, name := range names {
			if !ast.IsExported(name) {
				continue
			}
			if err := r.field(f, name, tag, in, pkg, prefix, yamlPath, out); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *configReader) field(f *ast.Field, name string, tag reflect.StructTag, in *srcFile, pkg, prefix, yamlPath string, out *[]envVar) error {
	yamlName, yamlOpts, _ := strings.Cut(tag.Get("yaml"), ",")
	path := yamlPath
	switch {
	case yamlName == "-" || yamlPath == "-":
		path = "-"
	case strings.Contains(","+yamlOpts+",", ",inline,"):
	case yamlName == "":
		path = joinYAML(yamlPath, strings.ToLower(name))
	default:
		path = joinYAML(yamlPath, yamlName)
	}
	if _, ptr := f.Type.(*ast.StarExpr); ptr {
		return fmt.Errorf("%s: field %s: pointer fields are not documented (caarlos0/env enters them only when set)", pkg, name)
	}
	if _, anon := f.Type.(*ast.StructType); anon {
		return r.walk(f.Type.(*ast.StructType), in, pkg, prefix+tag.Get("envPrefix"), path, out)
	}
	ownKey, opts, _ := strings.Cut(tag.Get("env"), ",")
	if ownKey == "-" || strings.Contains(","+opts+",", ",-,") {
		return nil
	}
	if ownKey != "" {
		def, has := tag.Lookup("default")
		doc := f.Doc.Text()
		if doc == "" {
			doc = f.Comment.Text()
		}
		*out = append(*out, envVar{Name: prefix + ownKey, Type: types.ExprString(f.Type), Default: def, HasDefault: has,
			YAML: path, Doc: strings.Join(strings.Fields(doc), " ")})
	}
	if arr, ok := f.Type.(*ast.ArrayType); ok {
		if st, _, _, err := r.structOf(arr.Elt, in, pkg); err != nil || st != nil {
			return fmt.Errorf("%s: field %s: slices of structs are not documented", pkg, name)
		}
		return nil
	}
	st, sin, spkg, err := r.structOf(f.Type, in, pkg)
	if err != nil {
		return fmt.Errorf("%s: field %s: %w", pkg, name, err)
	}
	if st == nil {
		return nil
	}
	return r.walk(st, sin, spkg, prefix+tag.Get("envPrefix"), path, out)
}

func joinYAML(prefix, name string) string {
	if prefix == "" || prefix == "-" {
		return name
	}
	return prefix + "." + name
}

// renderConfigDoc writes the reference for the binaries.
func renderConfigDoc(r *configReader, bins []configBinary) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated by `make config-docs` (e2e/configdoc_test.go) from the Config structs; do not edit. -->\n\n")
	b.WriteString("Every Canopy binary reads its configuration once, at start (`libs/config`): first the `default` of each\n")
	b.WriteString("setting, then an optional YAML file (`-config FILE` or `CANOPY_CONFIG`), then the environment variables\n")
	b.WriteString("listed here, which override both. Durations are Go durations (`1m30s`), lists are comma-separated.\n")
	b.WriteString("A setting without a default here may still get one in code (the service's `DefaultConfig()` or\n")
	b.WriteString("constructor). The YAML key is the setting's path in the config file (`-`: not read from the file).\n")
	for _, bin := range bins {
		fmt.Fprintf(&b, "\n## %s\n\nCommand `%s`.", bin.Name, bin.Command)
		if bin.Note != "" {
			b.WriteString(" " + bin.Note)
		}
		b.WriteString("\n\n| variable | type | default | YAML key | description |\n|---|---|---|---|---|\n")
		seen := map[string]bool{}
		for _, root := range bin.Roots {
			vs, err := r.vars(root, "CANOPY_")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", bin.Name, err)
			}
			for _, v := range vs {
				if seen[v.Name] {
					continue // the same variable fills two settings; the first one is listed
				}
				seen[v.Name] = true
				def := "—"
				if v.HasDefault {
					def = "`" + v.Default + "`"
					if v.Default == "" {
						def = "`\"\"`"
					}
				}
				doc := v.Doc
				if doc == "" {
					doc = "—"
				}
				fmt.Fprintf(&b, "| `%s` | `%s` | %s | `%s` | %s |\n", v.Name, v.Type, cellEscape(def), v.YAML, cellEscape(doc))
			}
		}
	}
	return b.Bytes(), nil
}

func cellEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// workspaceFiles maps each workspace package to its non-test Go files.
func workspaceFiles(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range goList(t, root) {
		rel := strings.TrimPrefix(p.ImportPath, modulePath+"/")
		for _, f := range p.GoFiles {
			out[rel] = append(out[rel], filepath.Join(p.Dir, f))
		}
	}
	return out
}

func TestConfigDoc(t *testing.T) {
	root := repoRoot(t)
	r := newConfigReader(workspaceFiles(t, root))
	for cmd := range customMains {
		if !isDir(filepath.Join(root, cmd)) {
			t.Errorf("customMains lists %s, which does not exist", cmd)
		}
	}
	bins, err := configBinaries(r, root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := renderConfigDoc(r, bins)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, configDocPath)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with `make config-docs`)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date: run `make config-docs`", configDocPath)
	}
}

// The sample types below exercise every construct the reader handles; the
// test compares the reader's names with what caarlos0/env itself derives.

type sampleInner struct {
	// Addr is where to listen.
	Addr    string        `yaml:"addr" env:"ADDR" default:"127.0.0.1:1"`
	Timeout time.Duration `yaml:"timeout" env:"TIMEOUT"`
	Deeper  sampleDeeper  `yaml:"deeper" envPrefix:"DEEP_"`
	hidden  string        `env:"HIDDEN"` //nolint:unused // unexported: never read
}

type sampleDeeper struct {
	Workers int `yaml:"workers" env:"WORKERS" default:"4"`
}

type sampleNamed sampleDeeper

type sampleEmbedded struct {
	Level string `yaml:"level" env:"LEVEL"`
}

type sampleConfig struct {
	sampleEmbedded `yaml:",inline"` // unexported embedded type: skipped
	SampleOuter    `yaml:",inline"`
	Inner          sampleInner `yaml:"inner" envPrefix:"SVC_"`
	NoPrefix       sampleInner `yaml:"no_prefix"`
	Named          sampleNamed `yaml:"named" envPrefix:"NAMED_"`
	Anon           struct {
		Flag bool `env:"FLAG"`
	} `envPrefix:"ANON_"`
	Brokers   []string  `yaml:"brokers" env:"KAFKA_BROKERS" envSeparator:"," default:"a:1,b:2"`
	Ignored   string    `env:"-"`
	At        time.Time `env:"AT"`
	One, Two  int       `env:"NUM"`
	NoEnv     string    `yaml:"no_env"`
	WithOpts  string    `env:"WITH_OPTS,required"`
	IgnoredTo string    `env:"IGNORED_TO,-"`
}

// SampleOuter is embedded with its fields inlined.
type SampleOuter struct {
	Region string `yaml:"region" env:"REGION" default:"eu"`
}

func TestConfigReaderMatchesLoader(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	r := newConfigReader(map[string][]string{"e2e": {filepath.Join(wd, "configdoc_test.go")}})
	got, err := r.vars(configRoot{"e2e", "sampleConfig", ""}, "CANOPY_")
	if err != nil {
		t.Fatal(err)
	}
	params, err := env.GetFieldParamsWithOptions(&sampleConfig{}, env.Options{Prefix: "CANOPY_", DefaultValueTagName: "default"})
	if err != nil {
		t.Fatal(err)
	}
	var want, names []string
	for _, p := range params {
		if p.Ignored {
			continue
		}
		want = append(want, fmt.Sprintf("%s=%s/%v", p.Key, p.DefaultValue, p.HasDefaultValue))
	}
	for _, v := range got {
		names = append(names, fmt.Sprintf("%s=%s/%v", v.Name, v.Default, v.HasDefault))
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Errorf("reader and loader disagree:\nreader %q\nloader %q", names, want)
	}
	// The doc and YAML path of one nested variable, to pin the rest of a row.
	for _, v := range got {
		if v.Name == "CANOPY_SVC_ADDR" && (v.Doc != "Addr is where to listen." || v.YAML != "inner.addr" || v.Type != "string") {
			t.Errorf("CANOPY_SVC_ADDR: got %+v", v)
		}
	}
}

func TestLaunchSpecFound(t *testing.T) {
	dir := t.TempDir()
	src := `package main

import (
	"github.com/canopy-platform/canopy/libs/launch"
	svc "github.com/canopy-platform/canopy/services/orders"
)

func main() { launch.Main(launch.Spec[svc.Config]{Name: "orders"}) }
`
	fn := filepath.Join(dir, "main.go")
	if err := os.WriteFile(fn, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newConfigReader(map[string][]string{"services/orders/cmd/orders": {fn}})
	got, err := r.launchSpec("services/orders/cmd/orders")
	if err != nil || got == nil || *got != (configRoot{Pkg: "services/orders", Type: "Config"}) {
		t.Fatalf("launchSpec = %+v, %v; want services/orders.Config", got, err)
	}
}
