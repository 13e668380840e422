package checker

import (
	"strings"
	"testing"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
)

// TestRedisSampleMetrics checks the sample fields alerting's default rules
// need from INFO: maxclients (connections-high) and, on replicas,
// replication_running (replication-stopped).
func TestRedisSampleMetrics(t *testing.T) {
	primary := "# Server\r\nuptime_in_seconds:10\r\n# Clients\r\nconnected_clients:7\r\nmaxclients:10000\r\n" +
		"# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"
	replica := func(link string) string {
		return "# Clients\r\nconnected_clients:2\r\nmaxclients:4064\r\n# Replication\r\nrole:slave\r\n" +
			"master_host:10.0.0.5\r\nmaster_port:6379\r\nmaster_link_status:" + link + "\r\nmaster_last_io_seconds_ago:1\r\n"
	}
	old := "# Clients\r\nconnected_clients:2\r\n# Replication\r\nrole:master\r\n"
	cases := []struct {
		name   string
		info   string
		sample bool
		want   map[string]int64 // -1: absent
	}{
		{"primary", primary, true, map[string]int64{"maxclients": 10000, "connected_clients": 7, "replication_running": -1}},
		{"replica with its link up", replica("up"), true, map[string]int64{"maxclients": 4064, "replication_running": 1}},
		{"replica with its link down", replica("down"), true, map[string]int64{"replication_running": 0}},
		{"Redis before 7 has no maxclients in INFO", old, true, map[string]int64{"maxclients": -1, "connected_clients": 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var res probe.Result
			if err := parseInfo([]byte(tc.info), &res, tc.sample); err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				got, ok := res.Sample[k]
				switch {
				case want < 0 && ok:
					t.Errorf("%s = %d, want none", k, got)
				case want >= 0 && (!ok || got != want):
					t.Errorf("%s = %d (present %v), want %d", k, got, ok, want)
				}
			}
		})
	}
	var res probe.Result
	if err := parseInfo([]byte(strings.ReplaceAll(replica("down"), "# Clients\r\n", "")), &res, false); err != nil {
		t.Fatal(err)
	}
	if res.Sample != nil {
		t.Errorf("a probe without sample has a sample: %v", res.Sample)
	}
}
