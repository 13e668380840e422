package local

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

func TestReplicaState(t *testing.T) {
	info := parseInfo("# Replication\r\nrole:master\r\nconnected_slaves:2\r\n" +
		"slave0:ip=127.0.0.1,port=7001,state=online,offset=14,lag=0\r\n" +
		"slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n" +
		"master_repl_offset:14\r\n")
	tests := []struct {
		name string
		ip   string
		port int
		want string
	}{
		{name: "online", ip: "127.0.0.1", port: 7001, want: "online"},
		{name: "waiting for its RDB child", ip: "127.0.0.1", port: 7002, want: "wait_bgsave"},
		{name: "not listed", ip: "127.0.0.1", port: 7003, want: ""},
		{name: "same port on another host", ip: "10.0.0.2", port: 7001, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := replicaState(info, tc.ip, tc.port); got != tc.want {
				t.Fatalf("replicaState(%s:%d) = %q, want %q", tc.ip, tc.port, got, tc.want)
			}
		})
	}
}

// TestAckRequester checks the raw REPLCONF GETACK exchange against a real
// server: GETACK has no reply, so a request reads exactly the PING's, and the
// connection stays in step for the next one.
func TestAckRequester(t *testing.T) {
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := testSpec(dataRoot(t), driver.EngineRedis, freePort(t))
	d := newDriver(t, Config{})
	t.Cleanup(func() { _ = d.Destroy(context.Background(), spec.NodeID) })
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	n, err := d.Start(ctx, spec.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	a, err := dialAckRequester(ctx, n.Address, spec.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	for i := range 3 {
		if err := a.request(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	bad := spec.Admin
	bad.Password += "-wrong"
	if _, err := dialAckRequester(ctx, n.Address, bad); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("dial with a wrong password: err = %v, want WRONGPASS", err)
	}
}
