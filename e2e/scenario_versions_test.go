package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// catalogTimeout bounds the wait for the catalog to know what the hosts
// run: it asks provisioning at most every 5 s after a failed ask (a listing
// made before provisioning listened), and caches an answer for 15 s.
const catalogTimeout = 30 * time.Second

// TestScenarioTruthfulCatalog checks the catalog against the engines
// installed on this machine: it offers only the major.minor of the
// installed mariadbd and redis-server, labelled the engines' own way
// (mariadb-10.11.19, redis-7.0.15), in the Canopy API and the OSB catalog;
// an order for any other version is refused at once with 422 naming the
// available ones, and leaves nothing; a ready instance's engine_version is
// the build its server reports (--version, and SELECT VERSION() on MySQL).
func TestScenarioTruthfulCatalog(t *testing.T) {
	p := platformFor(t)
	admin := p.admin(t)
	start := time.Now()
	before := admin.allocation()
	mysqlBuild := installedBuild(t, "mariadbd", `\bVer\s+(\d+)\.(\d+)\.(\d+)-MariaDB`, "mariadb")
	redisBuild := installedBuild(t, "redis-server", `\bv=(\d+)\.(\d+)\.(\d+)\b`, "redis")
	t.Logf("installed: %s (%s), %s (%s)", mysqlBuild.label, mysqlBuild.series, redisBuild.label, redisBuild.series)
	builds := map[string]build{"mysql": mysqlBuild, "redis": redisBuild}
	tenantID := "versions-" + randHex(3)
	tenant := p.newTenant(t, tenantID, "tenant-admin")

	// The catalog offers exactly the installed series, with their labels.
	var cat versionedServices
	waitFor(t, "the catalog to label its versions with the installed builds", catalogTimeout, func() (bool, string) {
		if err := tenant.call("GET", "/api/v1/catalog/services", nil, http.StatusOK, &cat); err != nil {
			return false, err.Error()
		}
		for _, s := range cat.Items {
			if len(s.VersionLabels) == 0 {
				return false, fmt.Sprintf("%s: versions %v without labels", s.Name, s.Versions)
			}
		}
		return true, ""
	})
	plans := map[string]string{}
	for _, s := range cat.Items {
		b := builds[s.Name]
		if !slices.Equal(s.Versions, []string{b.series}) || s.VersionLabels[b.series] != b.label {
			t.Errorf("service %s offers %v labelled %v, want [%s] labelled %s", s.Name, s.Versions, s.VersionLabels, b.series, b.label)
		}
		if len(s.Plans) == 0 {
			t.Errorf("service %s offers no plan", s.Name)
		}
		for _, pl := range s.Plans {
			plans[pl.Name] = pl.ID
			if !slices.Equal(pl.Versions, []string{b.series}) || pl.DefaultVersion != b.series || pl.VersionLabels[b.series] != b.label || len(pl.Unavailable) > 0 {
				t.Errorf("plan %s offers %v (default %q) labelled %v, unavailable %v; want only %s labelled %s",
					pl.Name, pl.Versions, pl.DefaultVersion, pl.VersionLabels, pl.Unavailable, b.series, b.label)
			}
		}
	}

	// The OSB catalog says the same to a platform.
	var cred struct{ Username, Password string }
	admin.must("POST", "/api/v1/catalog/broker-credentials", map[string]any{"name": "cf-" + tenantID, "tenant": tenantID}, http.StatusCreated, &cred)
	osb := &osbClient{t: t, base: p.URL, user: cred.Username, password: cred.Password}
	var ocat struct {
		Services []struct {
			Name  string `json:"name"`
			Plans []struct {
				Name     string `json:"name"`
				Metadata struct {
					Canopy struct {
						Versions      []string          `json:"versions"`
						VersionLabels map[string]string `json:"version_labels"`
					} `json:"canopy"`
				} `json:"metadata"`
			} `json:"plans"`
		} `json:"services"`
	}
	osb.must("GET", "/v2/catalog", nil, http.StatusOK, &ocat)
	for _, s := range ocat.Services {
		b := builds[s.Name]
		for _, pl := range s.Plans {
			if c := pl.Metadata.Canopy; !slices.Equal(c.Versions, []string{b.series}) || c.VersionLabels[b.series] != b.label {
				t.Errorf("OSB plan %s offers %v labelled %v, want [%s] labelled %s", pl.Name, c.Versions, c.VersionLabels, b.series, b.label)
			}
		}
	}

	// Orders for versions no host runs: 422 at once, naming what is available.
	for _, o := range []struct{ plan, version, engine string }{
		{"mysql-dev-single-az", "8.0", "mysql"},
		{"mysql-dev-single-az", "8.4", "mysql"},
		{"redis-dev-single-az", "7.4", "redis"},
		{"redis-dev-single-az", "6.2", "redis"},
	} {
		b := builds[o.engine]
		if o.version == b.series {
			continue // this machine runs it after all
		}
		pr := tenant.mustProblem("POST", "/api/v1/instances", map[string]any{"name": "v" + strings.ReplaceAll(o.version, ".", "-"), "plan_id": plans[o.plan], "version": o.version}, http.StatusUnprocessableEntity)
		want := b.series + " (" + b.label + ")"
		if len(pr.Errors) != 1 || pr.Errors[0].Field != "version" || !strings.Contains(pr.Errors[0].Reason, want) || pr.Type != "https://canopy.dev/problems/version-unavailable" {
			t.Errorf("order of %s %s: problem %+v, want a version-unavailable field error on version naming %s", o.plan, o.version, pr, want)
		}
	}
	var list struct{ Items []instance }
	tenant.must("GET", "/api/v1/instances", nil, http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Fatalf("refused orders left %d instances", len(list.Items))
	}

	// Orders without a version get the installed series, and the ready
	// instances report the builds their servers run.
	t0 := time.Now()
	var created []instanceAccepted
	for _, name := range []string{"mysql-dev-single-az", "redis-dev-single-az"} {
		var acc instanceAccepted
		tenant.must("POST", "/api/v1/instances", map[string]any{"name": strings.TrimSuffix(name, "-single-az"), "plan_id": plans[name]}, http.StatusAccepted, &acc)
		id := acc.Instance.ID
		t.Cleanup(func() { bestEffortDelete(t, admin, id) })
		created = append(created, acc)
	}
	var insts []instance
	for _, acc := range created {
		waitOperation(t, tenant, acc.OperationID, readyTimeout)
		var inst versionedInstance
		tenant.must("GET", "/api/v1/instances/"+acc.Instance.ID, nil, http.StatusOK, &inst)
		b := builds[inst.Engine]
		if inst.State != "ready" || inst.Version != b.series || inst.EngineVersion != b.label {
			t.Errorf("instance %s (%s): state %s, version %q, engine_version %q; want ready, %s, %s", inst.ID, inst.Engine, inst.State, inst.Version, inst.EngineVersion, b.series, b.label)
		}
		insts = append(insts, inst.instance)
		if inst.Engine == "mysql" {
			checkServerVersion(t, tenant, inst)
		}
	}
	t.Logf("order → ready, versions checked %.2fs", time.Since(t0).Seconds())

	var deletes []string
	for _, inst := range insts {
		var acc instanceAccepted
		tenant.must("DELETE", "/api/v1/instances/"+inst.ID, nil, http.StatusAccepted, &acc)
		deletes = append(deletes, acc.OperationID)
	}
	for _, op := range deletes {
		waitOperation(t, tenant, op, deleteTimeout)
	}
	for i := range insts {
		tenant.must("GET", "/api/v1/instances/"+insts[i].ID, nil, http.StatusOK, &insts[i])
	}
	checkNothingLeft(t, p, tenant, admin, before, insts)
	t.Logf("scenario total %.2fs", time.Since(start).Seconds())
}

// build is an installed engine server: its catalog series and label.
type build struct{ series, label string }

// installedBuild reads name's --version as the local driver does
// (pattern: major, minor, patch), labelled flavor-x.y.z.
func installedBuild(t *testing.T, name, pattern, flavor string) build {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		path = "/usr/sbin/" + name
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", path, err)
	}
	m := regexp.MustCompile(pattern).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no version in %s --version: %q", path, out)
	}
	return build{series: m[1] + "." + m[2], label: flavor + "-" + m[1] + "." + m[2] + "." + m[3]}
}

// versionedServices is the catalog's services listing with its versions.
type versionedServices struct {
	Items []struct {
		Name          string            `json:"name"`
		Versions      []string          `json:"versions"`
		VersionLabels map[string]string `json:"version_labels"`
		Plans         []struct {
			ID             string            `json:"id"`
			Name           string            `json:"name"`
			Versions       []string          `json:"versions"`
			DefaultVersion string            `json:"default_version"`
			VersionLabels  map[string]string `json:"version_labels"`
			Unavailable    []string          `json:"unavailable_versions"`
		} `json:"plans"`
	} `json:"items"`
}

// versionedInstance is an instance with the version ordered and the build run.
type versionedInstance struct {
	instance
	Version       string `json:"version"`
	EngineVersion string `json:"engine_version"`
}

// checkServerVersion binds to a MySQL instance and checks that its primary
// answers SELECT VERSION() with the build its engine_version names.
func checkServerVersion(t *testing.T, c *client, inst versionedInstance) {
	t.Helper()
	var b binding
	c.must("POST", "/api/v1/instances/"+inst.ID+"/bindings", map[string]any{"name": "version"}, http.StatusCreated, &b)
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = b.Credentials.Username, b.Credentials.Password, "tcp", inst.Endpoints.Primary, b.Credentials.Database
	cfg.Timeout, cfg.ReadTimeout = 5*time.Second, 10*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		t.Fatalf("SELECT VERSION() on %s: %v", inst.Endpoints.Primary, err)
	}
	// "10.11.19-MariaDB-0+deb12u1" is mariadb-10.11.19.
	got := v
	if i := strings.IndexByte(v, '-'); i > 0 {
		got = v[:i]
		if strings.Contains(strings.ToLower(v), "mariadb") {
			got = "mariadb-" + got
		}
	}
	if got != inst.EngineVersion {
		t.Errorf("instance %s: the primary answers VERSION() %q, engine_version is %q", inst.ID, v, inst.EngineVersion)
	}
}
