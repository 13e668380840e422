package local

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver/drivertest"
)

// helperEnv carries the spec to the helper process that plays Canopy.
const helperEnv = "CANOPY_DRIVER_TEST_HELPER_SPEC"

// TestHelperStartNode is not a test: run by TestNodeSurvivesCanopyExit in a
// child process, it creates and starts one node, prints its record and exits
// without stopping it.
func TestHelperStartNode(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process only")
	}
	var spec driver.NodeSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := newDriver(t, Config{})
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n, err := d.Start(ctx, spec.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(n); err != nil {
		t.Fatal(err)
	}
}

// A node started by a Canopy process outlives it, and the next Canopy
// process adopts and operates it.
func TestNodeSurvivesCanopyExit(t *testing.T) {
	requireBinaries(t)
	for _, engine := range []driver.Engine{driver.EngineRedis, driver.EngineMySQL} {
		t.Run(string(engine), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			root := dataRoot(t)
			specs := drivertest.Specs("srv"+string(engine[0]), engine, "", root, func() int { return freePort(t) })
			spec := specs[0]
			raw, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperStartNode$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			var n driver.Node
			dec := json.NewDecoder(bytes.NewReader(out))
			if err := dec.Decode(&n); err != nil {
				t.Fatalf("helper output %q: %v", out, err)
			}
			// The helper ("Canopy") has exited; the server must still run.
			d := newDriver(t, Config{})
			t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
			st, err := d.Adopt(ctx, spec, n)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != driver.StateRunning || st.Node.PID != n.PID || !isServer(n.PID, mustResolve(t, d, engine), n.DataDir+"/data") {
				t.Fatalf("after the starting process exited: %+v, want running with pid %d", st, n.PID)
			}
			if err := d.Stop(ctx, spec.NodeID); err != nil {
				t.Fatal(err)
			}
			if alive(n.PID) {
				t.Fatalf("pid %d alive after stop", n.PID)
			}
			if _, err := d.Start(ctx, spec.NodeID); err != nil {
				t.Fatal(err)
			}
			if err := d.Destroy(ctx, spec.NodeID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mustResolve(t *testing.T, d *Driver, e driver.Engine) string {
	t.Helper()
	p, err := d.engine(e).server().resolve()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
