package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The layout tests keep the deployment artefacts in step with the code: every
// service that has a command (services/<name>/cmd/<name>) must have a compose
// service built from deploy/Dockerfile, a Prometheus scrape job and a Kubernetes
// Deployment (a DaemonSet for the data plane, see daemonSets) + Service +
// ConfigMap in k8s/base; and nothing may be deployed that has no service module
// behind it. When a new service lands, these tests name what is missing.

// servicePorts is the port plan of DESIGN.md: the HTTP port of every service
// (API, /livez, /readyz, /metrics).
var servicePorts = map[string]int{
	"gateway":      8080,
	"catalog":      8082,
	"scheduling":   8083,
	"provisioning": 8084,
	"healthcheck":  8085,
	"failover":     8086,
	"router":       8090,
	"metering":     8088,
	"alerting":     8089,
	"backup":       8091,
	"cdc":          8087,
}

// daemonSets are the services deployed as a DaemonSet with host networking
// rather than a Deployment: the router's client endpoints (one read-write and
// one read-only port per instance, from a range of a thousand, plus the
// Sentinel port) are served on the nodes themselves, next to the engines, by
// one replica per node.
var daemonSets = map[string]bool{
	"router": true,
}

// noDatabase are the services that keep no state of their own: no MySQL
// database and no Redis. They are given neither (a DSN they never use would
// only be a credential to leak) and do not wait for them.
var noDatabase = map[string]bool{
	"router": true,
}

// composeReplicated are the services docker-compose.yml runs twice (name and
// name-2): all but provisioning and the ones in its network namespace.
var composeReplicated = map[string]bool{
	"gateway": true, "catalog": true, "scheduling": true, "healthcheck": true,
	"failover": true, "metering": true, "alerting": true,
}

// k8sStandby are the services whose second replica is a standby, live but
// never ready while the active one holds the engine's lock.
var k8sStandby = map[string]bool{"alerting": true, "backup": true, "cdc": true}

// k8sSingle are the services Kubernetes runs once: provisioning (the local
// driver's nodes live in its pod).
var k8sSingle = map[string]bool{"provisioning": true}

// workloadKind is the Kubernetes kind that runs name.
func workloadKind(name string) string {
	if daemonSets[name] {
		return "DaemonSet"
	}
	return "Deployment"
}

// internalPorts are the operator/internal listeners of services whose HTTP
// port is public: /metrics (and /internal/v1, the detailed /readyz) are
// served there, never on the public port.
var internalPorts = map[string]int{
	"gateway": 8092,
}

// metricsPort is where Prometheus scrapes name.
func metricsPort(name string) int {
	if p, ok := internalPorts[name]; ok {
		return p
	}
	return servicePorts[name]
}

// notDeployed are service modules that are not a deployable service of their own.
var notDeployed = map[string]bool{
	"allinone": true, // the all-in-one binary (services/allinone/cmd/canopy)
}

// topics are the platform topics created explicitly (auto-creation is off), each
// with its dead-letter queue.
var topics = []string{
	"canopy.instances.v1",
	"canopy.placements.v1",
	"canopy.inventory.v1",
	"canopy.catalog.v1",
	"canopy.health.v1",
	"canopy.health.samples.v1",
	"canopy.failover.v1",
	"canopy.cdc.v1",
	"canopy.usage.v1",
	"canopy.alerts.v1",
}

const imagePrefix = "ghcr.io/canopy-platform/canopy-"

// repoRoot is the monorepo root, the parent of this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "services")); err != nil {
		t.Fatalf("repository root %s has no services/: %v", root, err)
	}
	return root
}

// deployedServices returns the services that must be deployed: every
// services/<name> with a services/<name>/cmd/<name> directory.
func deployedServices(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "services"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || notDeployed[e.Name()] {
			continue
		}
		if isDir(filepath.Join(root, "services", e.Name(), "cmd", e.Name())) {
			names = append(names, e.Name())
		}
	}
	return names
}

// hasServiceModule reports whether services/<name> is a Go module.
func hasServiceModule(root, name string) bool {
	_, err := os.Stat(filepath.Join(root, "services", name, "go.mod"))
	return err == nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func addrVar(service string) string {
	return "CANOPY_" + strings.ToUpper(service) + "_ADDR"
}

func TestServicePortsKnown(t *testing.T) {
	root := repoRoot(t)
	for _, name := range deployedServices(t, root) {
		if _, ok := servicePorts[name]; !ok {
			t.Errorf("service %q has a command but no port in servicePorts (e2e/layout_test.go) and docs/operations.md", name)
		}
	}
}

// --- docker compose ---------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string            `yaml:"context"`
		Dockerfile string            `yaml:"dockerfile"`
		Args       map[string]string `yaml:"args"`
	} `yaml:"build"`
	Command     any               `yaml:"command"`
	NetworkMode string            `yaml:"network_mode"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Networks    map[string]*struct {
		Aliases []string `yaml:"aliases"`
	} `yaml:"networks"`
	DependsOn   map[string]composeDependency `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Profiles []string `yaml:"profiles"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

func loadCompose(t *testing.T, root string) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// commandText flattens a compose command (string or list) for substring checks.
func commandText(cmd any) string {
	switch v := cmd.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, 0, len(v))
		for _, p := range v {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, " ")
	default:
		return ""
	}
}

func TestComposeInfrastructure(t *testing.T) {
	c := loadCompose(t, repoRoot(t))
	tests := []struct {
		name        string
		service     string
		imagePrefix string
		contains    []string // substrings of the command
		env         map[string]string
	}{
		{
			name: "kafka in KRaft mode without auto-creation", service: "kafka", imagePrefix: "apache/kafka:3.",
			env: map[string]string{"KAFKA_PROCESS_ROLES": "broker,controller", "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false"},
		},
		{
			name: "mysql 8 with GTID and row binlog", service: "mysql", imagePrefix: "mysql:8",
			contains: []string{"--gtid-mode=ON", "--enforce-gtid-consistency=ON", "--binlog-format=ROW", "--binlog-row-image=FULL", "--log-replica-updates=ON", "--server-id="},
		},
		{name: "redis 7", service: "redis", imagePrefix: "redis:7"},
		{name: "topic creation", service: "kafka-init", imagePrefix: "apache/kafka:3."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := c.Services[tc.service]
			if !ok {
				t.Fatalf("compose has no service %q", tc.service)
			}
			if !strings.HasPrefix(s.Image, tc.imagePrefix) {
				t.Errorf("%s image = %q, want %s*", tc.service, s.Image, tc.imagePrefix)
			}
			cmd := commandText(s.Command)
			for _, want := range tc.contains {
				if !strings.Contains(cmd, want) {
					t.Errorf("%s command lacks %q", tc.service, want)
				}
			}
			for k, want := range tc.env {
				if got := s.Environment[k]; got != want {
					t.Errorf("%s env %s = %q, want %q", tc.service, k, got, want)
				}
			}
		})
	}
}

func TestComposeServices(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t, root)
	for _, name := range deployedServices(t, root) {
		t.Run(name, func(t *testing.T) {
			s, ok := c.Services[name]
			if !ok {
				t.Fatalf("services/%s/cmd/%s exists but docker-compose.yml has no service %q", name, name, name)
			}
			if s.Build == nil {
				t.Fatalf("compose service %q has no build section", name)
			}
			if s.Build.Dockerfile != "deploy/Dockerfile" || s.Build.Context != "." {
				t.Errorf("build = {context %q, dockerfile %q}, want {., deploy/Dockerfile}", s.Build.Context, s.Build.Dockerfile)
			}
			if got := s.Build.Args["SERVICE"]; got != name {
				t.Errorf("build arg SERVICE = %q, want %q", got, name)
			}
			if !strings.HasPrefix(s.Image, imagePrefix+name+":") {
				t.Errorf("image = %q, want %s%s:<tag>", s.Image, imagePrefix, name)
			}
			port := servicePorts[name]
			if got, want := s.Environment[addrVar(name)], fmt.Sprintf("0.0.0.0:%d", port); got != want {
				t.Errorf("env %s = %q, want %q", addrVar(name), got, want)
			}
			required := []string{"CANOPY_MYSQL_DSN", "CANOPY_REDIS_ADDR", "CANOPY_KAFKA_BROKERS", "CANOPY_INTERNAL_SECRET"}
			deps := map[string]string{"mysql": "service_healthy", "redis": "service_healthy", "kafka-init": "service_completed_successfully"}
			if noDatabase[name] {
				required = []string{"CANOPY_KAFKA_BROKERS", "CANOPY_INTERNAL_SECRET"}
				deps = map[string]string{"kafka-init": "service_completed_successfully"}
				for _, k := range []string{"CANOPY_MYSQL_DSN", "CANOPY_REDIS_ADDR"} {
					if _, ok := s.Environment[k]; ok {
						t.Errorf("env %s is set, but %s keeps no state", k, name)
					}
				}
			}
			for _, k := range required {
				if s.Environment[k] == "" {
					t.Errorf("env %s is not set", k)
				}
			}
			if got := s.Environment["CANOPY_KAFKA_BROKERS"]; got != "kafka:9092" {
				t.Errorf("CANOPY_KAFKA_BROKERS = %q, want kafka:9092", got)
			}
			for dep, cond := range deps {
				if got := s.DependsOn[dep].Condition; got != cond {
					t.Errorf("depends_on %s condition = %q, want %q", dep, got, cond)
				}
			}
			// A service sharing another's network namespace starts after
			// it and is reached through it: it publishes nothing itself.
			if owner, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
				if _, dep := s.DependsOn[owner]; !dep {
					t.Errorf("network_mode %s without depends_on %s", s.NetworkMode, owner)
				}
				if len(s.Ports) > 0 {
					t.Errorf("ports %v on a service in %s's network namespace; publish them on %s", s.Ports, owner, owner)
				}
			}
		})
	}

	t.Run("gateway published on 8080", func(t *testing.T) {
		gw, ok := c.Services["gateway"]
		if !ok {
			t.Skip("no gateway yet")
		}
		if !slices.ContainsFunc(gw.Ports, func(p string) bool { return strings.HasSuffix(p, ":8080:8080") || p == "8080:8080" }) {
			t.Errorf("gateway ports = %v, want 8080 published", gw.Ports)
		}
		internal := strconv.Itoa(internalPorts["gateway"])
		if slices.ContainsFunc(gw.Ports, func(p string) bool { return strings.Contains(p, internal) }) {
			t.Errorf("gateway ports = %v publish the internal listener %s", gw.Ports, internal)
		}
		if got, want := gw.Environment["CANOPY_GATEWAY_INTERNAL_ADDR"], "0.0.0.0:"+internal; got != want {
			t.Errorf("CANOPY_GATEWAY_INTERNAL_ADDR = %q, want %q", got, want)
		}
		if prov, ok := c.Services["provisioning"]; ok {
			if got, want := prov.Environment["CANOPY_GATEWAY_URL"], "http://gateway:"+internal; got != want {
				t.Errorf("provisioning CANOPY_GATEWAY_URL = %q, want the internal listener %q", got, want)
			}
		}
	})

	t.Run("gateway upstreams point at compose services", func(t *testing.T) {
		gw, ok := c.Services["gateway"]
		if !ok {
			t.Skip("no gateway yet")
		}
		for k, v := range gw.Environment {
			if !strings.HasPrefix(k, "CANOPY_") || !strings.HasSuffix(k, "_URL") {
				continue
			}
			up := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(k, "CANOPY_"), "_URL"))
			want := fmt.Sprintf("http://%s:%d", up, servicePorts[up])
			if composeReplicated[up] {
				want += fmt.Sprintf(",http://%s-2:%d", up, servicePorts[up])
			}
			s, ok := c.Services[up]
			if !ok || v != want {
				t.Errorf("gateway %s = %q, want %q (and a compose service %q)", k, v, want, up)
				continue
			}
			// In another service's network namespace the name resolves
			// only as an alias of that service.
			if owner, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
				n := c.Services[owner].Networks["default"]
				if n == nil || !slices.Contains(n.Aliases, up) {
					t.Errorf("compose service %q runs in %q's network namespace, but %q has no alias %q on the default network", up, owner, owner, up)
				}
			}
		}
	})

	// Issue 19: the replica-safe services run a second replica, the same
	// block under <name>-2, which the gateway balances over; the ones pinned
	// to provisioning's network namespace (and provisioning) stay single.
	t.Run("second replicas", func(t *testing.T) {
		for _, name := range deployedServices(t, root) {
			one, two := c.Services[name], c.Services[name+"-2"]
			_, has := c.Services[name+"-2"]
			switch {
			case composeReplicated[name] && !has:
				t.Errorf("compose has no second replica %s-2", name)
				continue
			case !composeReplicated[name] && has:
				t.Errorf("compose runs %s-2, but %s is single (composeReplicated)", name, name)
				continue
			case !has:
				if name != "provisioning" && !strings.HasPrefix(one.NetworkMode, "service:") {
					t.Errorf("%s is single but not pinned to a network namespace: add it to composeReplicated", name)
				}
				continue
			}
			if one.Image != two.Image || one.NetworkMode != "" || two.NetworkMode != "" {
				t.Errorf("%s-2 image %q network_mode %q, want %s's image %q and its own network", name, two.Image, two.NetworkMode, name, one.Image)
			}
			if !mapsEqual(one.Environment, two.Environment) {
				t.Errorf("%s-2 environment differs from %s's", name, name)
			}
			wantPorts := 0
			if name == "gateway" {
				wantPorts = 1
				if !slices.ContainsFunc(two.Ports, func(p string) bool { return strings.HasSuffix(p, ":8081:8080") }) {
					t.Errorf("gateway-2 ports = %v, want 8081 published", two.Ports)
				}
			}
			if len(two.Ports) != wantPorts {
				t.Errorf("%s-2 publishes %v", name, two.Ports)
			}
		}
	})

	t.Run("every built service has a module", func(t *testing.T) {
		for svcName, s := range c.Services {
			if s.Build == nil {
				continue
			}
			svc := s.Build.Args["SERVICE"]
			if svcName != svc && svcName != svc+"-2" {
				t.Errorf("compose service %q builds SERVICE=%q; names must match", svcName, svc)
			}
			if !hasServiceModule(root, svc) {
				t.Errorf("compose service %q builds services/%s, which is not a module", svcName, svc)
			}
		}
	})
}

// --- topics -------------------------------------------------------------------

func TestTopicsCreatedAndDocumented(t *testing.T) {
	root := repoRoot(t)
	c := loadCompose(t, root)
	jobBytes, err := os.ReadFile(filepath.Join(root, "k8s", "overlays", "dev", "deps", "kafka-topics-job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docBytes, err := os.ReadFile(filepath.Join(root, "api", "topics.md"))
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{
		"docker-compose.yml kafka-init":               commandText(c.Services["kafka-init"].Command),
		"k8s/overlays/dev/deps/kafka-topics-job.yaml": string(jobBytes),
		"api/topics.md":                               string(docBytes),
	}
	for _, topic := range topics {
		for where, text := range sources {
			if !strings.Contains(text, topic) {
				t.Errorf("%s does not name topic %s", where, topic)
			}
		}
	}
	if !strings.Contains(string(docBytes), ".dlq") {
		t.Errorf("api/topics.md does not describe the dead-letter topics")
	}
}

// --- prometheus -------------------------------------------------------------------

func TestPrometheusScrapesEveryService(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = true
			}
		}
	}
	for _, name := range deployedServices(t, root) {
		if want := fmt.Sprintf("%s:%d", name, metricsPort(name)); !targets[want] {
			t.Errorf("deploy/prometheus/prometheus.yml does not scrape %s", want)
		}
	}
}

// --- kubernetes ---------------------------------------------------------------------

type k8sDoc struct {
	File string
	Kind string
	Name string
	Node *yaml.Node
}

// loadK8sFile decodes every document of a manifest file.
func loadK8sFile(path string) ([]k8sDoc, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []k8sDoc
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var head struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		if err := n.Decode(&head); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if head.Kind == "" && filepath.Base(path) != "kustomization.yaml" {
			return nil, fmt.Errorf("%s: a document without kind", path)
		}
		docs = append(docs, k8sDoc{File: path, Kind: head.Kind, Name: head.Metadata.Name, Node: &n})
	}
}

type kustomization struct {
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name   string `yaml:"name"`
		NewTag string `yaml:"newTag"`
	} `yaml:"images"`
	Replicas []struct {
		Name  string `yaml:"name"`
		Count int    `yaml:"count"`
	} `yaml:"replicas"`
	SecretGenerator []struct {
		Name     string   `yaml:"name"`
		Literals []string `yaml:"literals"`
	} `yaml:"secretGenerator"`
	Patches []struct {
		Path string `yaml:"path"`
	} `yaml:"patches"`
}

func loadKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

func TestK8sManifestsParse(t *testing.T) {
	root := repoRoot(t)
	var kustomizations []string
	err := filepath.WalkDir(filepath.Join(root, "k8s"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml":
		default:
			return nil
		}
		if _, err := loadK8sFile(p); err != nil {
			t.Error(err)
		}
		if d.Name() == "kustomization.yaml" {
			kustomizations = append(kustomizations, filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kustomizations) == 0 {
		t.Fatal("no kustomization.yaml under k8s/")
	}
	for _, dir := range kustomizations {
		rel, _ := filepath.Rel(root, dir)
		t.Run(rel, func(t *testing.T) {
			k := loadKustomization(t, dir)
			refs := append([]string{}, k.Resources...)
			for _, p := range k.Patches {
				if p.Path != "" {
					refs = append(refs, p.Path)
				}
			}
			for _, r := range refs {
				p := filepath.Join(dir, r)
				fi, err := os.Stat(p)
				switch {
				case err != nil:
					t.Errorf("%s lists %q, which does not exist", rel, r)
				case fi.IsDir():
					if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
						t.Errorf("%s lists directory %q without a kustomization.yaml", rel, r)
					}
				}
			}
		})
	}
}

// deployment is the part of a Deployment or DaemonSet the layout checks.
type deployment struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				HostNetwork bool        `yaml:"hostNetwork"`
				DNSPolicy   string      `yaml:"dnsPolicy"`
				Containers  []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type service struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Port       int `yaml:"port"`
			TargetPort any `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type configMap struct {
	Data map[string]string `yaml:"data"`
}

// baseObjects loads every object listed in k8s/base/kustomization.yaml, by kind/name.
func baseObjects(t *testing.T, root string) map[string]k8sDoc {
	t.Helper()
	dir := filepath.Join(root, "k8s", "base")
	k := loadKustomization(t, dir)
	objs := map[string]k8sDoc{}
	for _, r := range k.Resources {
		docs, err := loadK8sFile(filepath.Join(dir, r))
		if err != nil {
			t.Fatalf("k8s/base resource %s: %v", r, err)
		}
		for _, d := range docs {
			objs[d.Kind+"/"+d.Name] = d
		}
	}
	return objs
}

func TestK8sBaseServices(t *testing.T) {
	root := repoRoot(t)
	objs := baseObjects(t, root)
	for _, name := range deployedServices(t, root) {
		t.Run(name, func(t *testing.T) {
			full := "canopy-" + name
			port := servicePorts[name]
			kind := workloadKind(name)
			dd, ok := objs[kind+"/"+full]
			if !ok {
				t.Fatalf("services/%s/cmd/%s exists but k8s/base/kustomization.yaml lists no %s %s", name, name, kind, full)
			}
			sd, ok := objs["Service/"+full]
			if !ok {
				t.Fatalf("k8s/base/kustomization.yaml lists no Service %s", full)
			}
			cd, ok := objs["ConfigMap/"+full]
			if !ok {
				t.Fatalf("k8s/base/kustomization.yaml lists no ConfigMap %s", full)
			}
			var d deployment
			var s service
			var cm configMap
			for _, x := range []struct {
				doc k8sDoc
				dst any
			}{{dd, &d}, {sd, &s}, {cd, &cm}} {
				if err := x.doc.Node.Decode(x.dst); err != nil {
					t.Fatalf("%s: %v", x.doc.File, err)
				}
			}
			checkDeployment(t, name, port, d)

			if len(s.Spec.Selector) == 0 || !mapsEqual(s.Spec.Selector, d.Spec.Selector.MatchLabels) {
				t.Errorf("Service selector %v differs from %s selector %v", s.Spec.Selector, kind, d.Spec.Selector.MatchLabels)
			}
			if len(s.Spec.Ports) == 0 || s.Spec.Ports[0].Port != port {
				t.Errorf("Service ports = %+v, want port %d", s.Spec.Ports, port)
			}
			if got, want := cm.Data[addrVar(name)], fmt.Sprintf("0.0.0.0:%d", port); got != want {
				t.Errorf("ConfigMap %s %s = %q, want %q", full, addrVar(name), got, want)
			}
		})
	}

	t.Run("every deployment has a service module", func(t *testing.T) {
		for key := range objs {
			for _, kind := range []string{"Deployment", "DaemonSet"} {
				name, ok := strings.CutPrefix(key, kind+"/canopy-")
				if !ok {
					continue
				}
				if !hasServiceModule(root, name) {
					t.Errorf("k8s/base deploys canopy-%s but services/%s is not a module", name, name)
				}
				if workloadKind(name) != kind {
					t.Errorf("k8s/base runs canopy-%s as a %s, want a %s (daemonSets in e2e/layout_test.go)", name, kind, workloadKind(name))
				}
			}
		}
	})
}

// TestK8sReplicaSettings: every replica-safe service runs two pods, rolls
// without losing its ready one and has a disruption budget; standbys roll
// with maxUnavailable 100% and have none (a standby is never ready, so a
// budget or a rollout waiting for readiness would wait forever); every pod
// pauses in preStop and gets a grace period beyond that and the HTTP drain.
func TestK8sReplicaSettings(t *testing.T) {
	root := repoRoot(t)
	objs := baseObjects(t, root)
	for _, name := range deployedServices(t, root) {
		if daemonSets[name] {
			continue
		}
		t.Run(name, func(t *testing.T) {
			full := "canopy-" + name
			doc, ok := objs["Deployment/"+full]
			if !ok {
				t.Fatalf("no Deployment %s", full)
			}
			var d struct {
				Spec struct {
					Replicas int `yaml:"replicas"`
					Strategy struct {
						Type          string `yaml:"type"`
						RollingUpdate struct {
							MaxUnavailable string `yaml:"maxUnavailable"`
							MaxSurge       string `yaml:"maxSurge"`
						} `yaml:"rollingUpdate"`
					} `yaml:"strategy"`
					Template struct {
						Spec struct {
							Grace      int `yaml:"terminationGracePeriodSeconds"`
							Containers []struct {
								Lifecycle struct {
									PreStop struct {
										Sleep struct {
											Seconds int `yaml:"seconds"`
										} `yaml:"sleep"`
									} `yaml:"preStop"`
								} `yaml:"lifecycle"`
							} `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			}
			if err := doc.Node.Decode(&d); err != nil {
				t.Fatal(err)
			}
			ru := d.Spec.Strategy.RollingUpdate
			pdb, hasPDB := objs["PodDisruptionBudget/"+full]
			switch {
			case k8sSingle[name]:
				if d.Spec.Replicas != 1 || d.Spec.Strategy.Type != "Recreate" || hasPDB {
					t.Errorf("replicas %d, strategy %q, PDB %v; want 1, Recreate, none", d.Spec.Replicas, d.Spec.Strategy.Type, hasPDB)
				}
			case k8sStandby[name]:
				if d.Spec.Replicas != 2 || d.Spec.Strategy.Type != "RollingUpdate" || ru.MaxUnavailable != "100%" || ru.MaxSurge != "1" || hasPDB {
					t.Errorf("replicas %d, strategy %q %+v, PDB %v; want 2, RollingUpdate maxUnavailable 100%% maxSurge 1, none", d.Spec.Replicas, d.Spec.Strategy.Type, ru, hasPDB)
				}
			default:
				if d.Spec.Replicas != 2 || d.Spec.Strategy.Type != "RollingUpdate" || ru.MaxUnavailable != "0" || ru.MaxSurge != "1" {
					t.Errorf("replicas %d, strategy %q %+v; want 2, RollingUpdate maxUnavailable 0 maxSurge 1", d.Spec.Replicas, d.Spec.Strategy.Type, ru)
				}
				if !hasPDB {
					t.Fatalf("no PodDisruptionBudget %s", full)
				}
				var p struct {
					Spec struct {
						MaxUnavailable string `yaml:"maxUnavailable"`
						Selector       struct {
							MatchLabels map[string]string `yaml:"matchLabels"`
						} `yaml:"selector"`
					} `yaml:"spec"`
				}
				if err := pdb.Node.Decode(&p); err != nil {
					t.Fatal(err)
				}
				if p.Spec.MaxUnavailable != "1" || p.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != full {
					t.Errorf("PDB maxUnavailable %q selector %v, want 1 and %s", p.Spec.MaxUnavailable, p.Spec.Selector.MatchLabels, full)
				}
			}
			pre := d.Spec.Template.Spec.Containers[0].Lifecycle.PreStop.Sleep.Seconds
			// preStop, then the HTTP drain (httpx's 15 s), then the stages.
			if pre < 1 || d.Spec.Template.Spec.Grace < pre+15+10 {
				t.Errorf("preStop sleep %ds, terminationGracePeriodSeconds %d; want a pause and at least pause + 15 s drain + 10 s", pre, d.Spec.Template.Spec.Grace)
			}
		})
	}
}

func checkDeployment(t *testing.T, name string, port int, d deployment) {
	t.Helper()
	sel := d.Spec.Selector.MatchLabels
	if len(sel) == 0 {
		t.Errorf("Deployment has no selector")
	}
	for k, v := range sel {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("pod template lacks selector label %s=%s", k, v)
		}
	}
	if nr := d.Spec.Template.Spec.SecurityContext.RunAsNonRoot; nr == nil || !*nr {
		t.Errorf("pod securityContext.runAsNonRoot is not true")
	}
	// A DaemonSet here serves client ports on the node itself; with host
	// networking the pod still resolves the platform's Services only with
	// ClusterFirstWithHostNet. Deployments stay off the host network.
	ps := d.Spec.Template.Spec
	switch {
	case daemonSets[name] && (!ps.HostNetwork || ps.DNSPolicy != "ClusterFirstWithHostNet"):
		t.Errorf("DaemonSet pod hostNetwork = %v, dnsPolicy = %q, want true and ClusterFirstWithHostNet", ps.HostNetwork, ps.DNSPolicy)
	case !daemonSets[name] && ps.HostNetwork:
		t.Errorf("Deployment pod uses the host network")
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !strings.HasPrefix(c.Image, imagePrefix+name+":") {
		t.Errorf("image = %q, want %s%s:<tag>", c.Image, imagePrefix, name)
	}
	if len(c.Ports) == 0 || c.Ports[0].ContainerPort != port || c.Ports[0].Name != "http" {
		t.Errorf("container ports = %+v, want http:%d", c.Ports, port)
	}
	probes := []struct {
		kind     string
		p        *probe
		path     string
		required bool
	}{
		{"livenessProbe", c.LivenessProbe, "/livez", true},
		{"readinessProbe", c.ReadinessProbe, "/readyz", true},
		{"startupProbe", c.StartupProbe, "/livez", false},
	}
	for _, pr := range probes {
		switch {
		case pr.p == nil && pr.required:
			t.Errorf("%s missing", pr.kind)
		case pr.p == nil:
		case pr.p.HTTPGet == nil || pr.p.HTTPGet.Path != pr.path:
			t.Errorf("%s is not an httpGet on %s", pr.kind, pr.path)
		case fmt.Sprint(pr.p.HTTPGet.Port) != "http" && fmt.Sprint(pr.p.HTTPGet.Port) != fmt.Sprint(port):
			t.Errorf("%s port = %v, want http or %d", pr.kind, pr.p.HTTPGet.Port, port)
		}
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("resources.requests.%s not set", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Errorf("resources.limits.memory not set")
	}
	if ape := c.SecurityContext.AllowPrivilegeEscalation; ape == nil || *ape {
		t.Errorf("container securityContext.allowPrivilegeEscalation is not false")
	}
	var refs []string
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			refs = append(refs, ef.ConfigMapRef.Name)
		}
	}
	for _, want := range []string{"canopy-common", "canopy-" + name} {
		if !slices.Contains(refs, want) {
			t.Errorf("envFrom lacks ConfigMap %s (has %v)", want, refs)
		}
	}
	secrets := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secrets[e.Name] = e.ValueFrom.SecretKeyRef.Name
		}
	}
	want := []string{"CANOPY_MYSQL_DSN", "CANOPY_INTERNAL_SECRET"}
	if noDatabase[name] {
		want = []string{"CANOPY_INTERNAL_SECRET"}
		if _, ok := secrets["CANOPY_MYSQL_DSN"]; ok {
			t.Errorf("env CANOPY_MYSQL_DSN is set, but %s keeps no state", name)
		}
	}
	if name == "gateway" {
		want = append(want, "CANOPY_ADMIN_KEY")
	}
	for _, k := range want {
		if secrets[k] != "canopy-secrets" {
			t.Errorf("env %s is not taken from Secret canopy-secrets", k)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestK8sDevOverlay(t *testing.T) {
	root := repoRoot(t)
	k := loadKustomization(t, filepath.Join(root, "k8s", "overlays", "dev"))
	if k.Namespace != "canopy-dev" {
		t.Errorf("namespace = %q, want canopy-dev", k.Namespace)
	}
	if !slices.Contains(k.Resources, "../../base") {
		t.Errorf("dev overlay does not build on ../../base")
	}
	for _, name := range deployedServices(t, root) {
		t.Run(name, func(t *testing.T) {
			if !slices.ContainsFunc(k.Images, func(i struct {
				Name   string `yaml:"name"`
				NewTag string `yaml:"newTag"`
			}) bool {
				return i.Name == imagePrefix+name && i.NewTag != ""
			}) {
				t.Errorf("dev overlay sets no image tag for %s%s", imagePrefix, name)
			}
			pinned := slices.ContainsFunc(k.Replicas, func(r struct {
				Name  string `yaml:"name"`
				Count int    `yaml:"count"`
			}) bool {
				return r.Name == "canopy-"+name && r.Count == 1
			})
			switch {
			// A DaemonSet has no replica count (one pod per node; the dev
			// cluster's one node runs one), and kustomize refuses to set one.
			case daemonSets[name] && pinned:
				t.Errorf("dev overlay pins the DaemonSet canopy-%s to a replica count", name)
			case !daemonSets[name] && !pinned:
				t.Errorf("dev overlay does not pin canopy-%s to 1 replica", name)
			}
		})
	}
	t.Run("secret keys", func(t *testing.T) {
		var keys []string
		for _, g := range k.SecretGenerator {
			if g.Name != "canopy-secrets" {
				continue
			}
			for _, l := range g.Literals {
				key, _, _ := strings.Cut(l, "=")
				keys = append(keys, key)
			}
		}
		for _, want := range []string{"mysql-dsn", "internal-secret", "admin-key"} {
			if !slices.Contains(keys, want) {
				t.Errorf("secretGenerator canopy-secrets lacks %s (has %v)", want, keys)
			}
		}
	})
}

// TestK8sRender renders every overlay with `kubectl kustomize` when kubectl is on
// PATH (it embeds kustomize); the structural tests above run everywhere.
func TestK8sRender(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	root := repoRoot(t)
	for _, dir := range []string{"k8s/base", "k8s/overlays/dev"} {
		t.Run(dir, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join(root, dir))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
			}
			var kinds []string
			dec := yaml.NewDecoder(bytes.NewReader(out))
			for {
				var head struct {
					Kind     string `yaml:"kind"`
					Metadata struct {
						Name string `yaml:"name"`
					} `yaml:"metadata"`
				}
				err := dec.Decode(&head)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("rendered %s: %v", dir, err)
				}
				kinds = append(kinds, head.Kind+"/"+head.Metadata.Name)
			}
			sort.Strings(kinds)
			for _, name := range deployedServices(t, root) {
				for _, kind := range []string{workloadKind(name), "Service"} {
					if !slices.Contains(kinds, kind+"/canopy-"+name) {
						t.Errorf("rendered %s lacks %s/canopy-%s", dir, kind, name)
					}
				}
			}
		})
	}
}

// --- Dockerfile -------------------------------------------------------------------

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		"ARG SERVICE",
		"./services/${SERVICE}/cmd/${cmd}",
		"COPY go.work",
		"USER 65532",
		"AS allinone",
		// The process runs outside the repository: the gateway finds the
		// document it serves at /api/v1/openapi.yaml only through this.
		"ENV CANOPY_GATEWAY_OPENAPI_PATH=",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("deploy/Dockerfile lacks %q", want)
		}
	}
	// Everything go.work uses must be copied into the builder, or the build fails.
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(work), "\n") {
		dir := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "use"))
		if !strings.HasPrefix(dir, "./") {
			continue
		}
		top := strings.SplitN(strings.TrimPrefix(dir, "./"), "/", 2)[0]
		if !strings.Contains(text, "COPY "+top+" ") {
			t.Errorf("go.work uses %s but deploy/Dockerfile does not COPY %s", dir, top)
		}
	}
}
