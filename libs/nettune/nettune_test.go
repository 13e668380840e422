package nettune

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{in: "single-az", want: SingleAZ},
		{in: "multi-az", want: MultiAZ},
		{in: "multi-region", want: MultiRegion},
		{in: "", wantErr: true},
		{in: "Multi-AZ", wantErr: true}, // modes are exact, as the catalog spells them
		{in: "multi_region", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if !tc.wantErr {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			require.ErrorIs(t, err, ErrUnknownMode)
			var me *ModeError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, tc.in, me.Input)
			assert.Contains(t, err.Error(), "single-az")
		})
	}
}

func TestLinkValidate(t *testing.T) {
	ok := Link{BandwidthMbps: 1000, RTT: time.Millisecond}
	tests := []struct {
		name      string
		edit      func(*Link)
		wantField string // "" means valid
	}{
		{name: "valid without p95", edit: func(*Link) {}},
		{name: "valid with p95", edit: func(l *Link) { l.P95RTT = 3 * time.Millisecond }},
		{name: "p95 equal to rtt", edit: func(l *Link) { l.P95RTT = l.RTT }},
		{name: "zero bandwidth", edit: func(l *Link) { l.BandwidthMbps = 0 }, wantField: "BandwidthMbps"},
		{name: "negative bandwidth", edit: func(l *Link) { l.BandwidthMbps = -1 }, wantField: "BandwidthMbps"},
		{name: "NaN bandwidth", edit: func(l *Link) { l.BandwidthMbps = math.NaN() }, wantField: "BandwidthMbps"},
		{name: "infinite bandwidth", edit: func(l *Link) { l.BandwidthMbps = math.Inf(1) }, wantField: "BandwidthMbps"},
		// 10 Gbit/s given in bit/s by mistake.
		{name: "bandwidth in wrong unit", edit: func(l *Link) { l.BandwidthMbps = 10e9 }, wantField: "BandwidthMbps"},
		{name: "zero rtt", edit: func(l *Link) { l.RTT = 0 }, wantField: "RTT"},
		{name: "negative rtt", edit: func(l *Link) { l.RTT = -time.Millisecond }, wantField: "RTT"},
		// 80 "ms" passed as time.Duration(80) * time.Second.
		{name: "rtt in wrong unit", edit: func(l *Link) { l.RTT = 80 * time.Second }, wantField: "RTT"},
		{name: "negative p95", edit: func(l *Link) { l.P95RTT = -1 }, wantField: "P95RTT"},
		{name: "p95 below rtt", edit: func(l *Link) { l.P95RTT = time.Microsecond }, wantField: "P95RTT"},
		{name: "p95 too large", edit: func(l *Link) { l.P95RTT = time.Minute }, wantField: "P95RTT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := ok
			tc.edit(&l)
			err := l.Validate()
			_, cerr := Compute(MultiAZ, l)
			if tc.wantField == "" {
				require.NoError(t, err)
				require.NoError(t, cerr)
				return
			}
			require.ErrorIs(t, err, ErrInvalidLink)
			var le *LinkError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, tc.wantField, le.Field)
			assert.Contains(t, err.Error(), tc.wantField)
			assert.Equal(t, err, cerr, "Compute reports the same error")
		})
	}
}

func TestComputeRejectsUnknownMode(t *testing.T) {
	_, err := Compute("dual-az", Link{BandwidthMbps: 1, RTT: time.Millisecond})
	require.ErrorIs(t, err, ErrUnknownMode)
	_, err = Default("dual-az")
	require.ErrorIs(t, err, ErrUnknownMode)
	_, err = DefaultLink("")
	require.ErrorIs(t, err, ErrUnknownMode)
}

// want is the expected outcome of a profile, one field per decision.
type want struct {
	bufMax, tcpRmemMax, tcpWmemMax int64
	bbr                            bool
	replTimeout, replBacklog       int64
	slaveNetTimeout                int64
	heartbeat                      string
	semiSync                       bool
	semiSyncTimeoutMS              int64
	netRead, netWrite              int64
	connectTimeout                 time.Duration
	kafka                          KafkaSettings
}

// TestDefaultProfiles pins each mode's default profile. The comments carry the
// arithmetic, so a changed value shows which step moved.
func TestDefaultProfiles(t *testing.T) {
	tests := []struct {
		mode Mode
		want want
	}{
		{
			// 10 Gbit/s, 0.2 ms RTT, 0.5 ms P95.
			mode: SingleAZ,
			want: want{
				// BDP = 1.25 GB/s × 0.2 ms = 250 kB; ×2 = 500 kB → 1 MiB →
				// floor 4 MiB. Autotuning ceilings stay at the kernel's 6/4 MiB.
				bufMax: 4 * mib, tcpRmemMax: 6 * mib, tcpWmemMax: 4 * mib,
				// redis.conf default 60 s; 1 MiB/s × 60 s = 60 MiB backlog.
				replTimeout: 60, replBacklog: 60 * mib,
				// RTO = 0.5 + 200 ms; 14 × RTO = 2.8 s < orchestrator's 4.
				slaveNetTimeout: 4, heartbeat: "2",
				// 3 × RTO = 0.6 s → 0.7 s → floor 1 s.
				semiSync: true, semiSyncTimeoutMS: 1000,
				netRead: 30, netWrite: 60,
				// one SYN retransmit at 1 s + 2 × 0.5 ms → 1.5 s.
				connectTimeout: 1500 * time.Millisecond,
				kafka:          KafkaSettings{BatchBytes: mib, BatchSize: 100, BatchTimeout: 5 * time.Millisecond, Compression: "lz4"},
			},
		},
		{
			// 10 Gbit/s, 2 ms RTT, 4 ms P95.
			mode: MultiAZ,
			want: want{
				// BDP = 1.25 GB/s × 2 ms = 2.5 MB; ×2 = 5 MB → 5 MiB. The
				// receive ceiling stays at the kernel's 6 MiB; send rises to 5.
				bufMax: 5 * mib, tcpRmemMax: 6 * mib, tcpWmemMax: 5 * mib,
				replTimeout: 60, replBacklog: 60 * mib,
				// RTO = 204 ms; 14 × RTO = 2.9 s → 4 s still holds.
				slaveNetTimeout: 4, heartbeat: "2",
				// the plan's semi-sync waits on this link: 1 s, not 10 s.
				semiSync: true, semiSyncTimeoutMS: 1000,
				netRead: 30, netWrite: 60,
				connectTimeout: 1500 * time.Millisecond,
				kafka:          KafkaSettings{BatchBytes: mib, BatchSize: 100, BatchTimeout: 5 * time.Millisecond, Compression: "lz4"},
			},
		},
		{
			// 1 Gbit/s, 80 ms RTT, 120 ms P95: a WAN link.
			mode: MultiRegion,
			want: want{
				// BDP = 125 MB/s × 80 ms = 10 MB; ×2 = 20 MB → 20 MiB: five
				// times the 4 MiB a LAN node gets, which would otherwise cap a
				// replication stream at ~4 MiB / 80 ms ≈ 50 MiB/s.
				bufMax: 20 * mib, tcpRmemMax: 20 * mib, tcpWmemMax: 20 * mib,
				bbr: true,
				// doubled patience on a WAN: 120 s; 1 MiB/s × 120 s = 120 MiB.
				replTimeout: 120, replBacklog: 120 * mib,
				// RTO = 320 ms; 14 × RTO = 4.5 s → 5, but the WAN floor is 8.
				slaveNetTimeout: 8, heartbeat: "4",
				// a commit never waits on a cross-region ack.
				semiSync: false,
				netRead:  60, netWrite: 120,
				// SYN retransmits at 1 s and 3 s + 2 × 120 ms = 3.24 → 3.5 s.
				connectTimeout: 3500 * time.Millisecond,
				// 10× messages per batch; linger RTT/2 = 40 ms; zstd.
				kafka: KafkaSettings{BatchBytes: mib, BatchSize: 1000, BatchTimeout: 40 * time.Millisecond, Compression: "zstd"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(string(tc.mode), func(t *testing.T) {
			p, err := Default(tc.mode)
			require.NoError(t, err)
			assert.Equal(t, tc.mode, p.Mode)
			checkProfile(t, p, tc.want)
			checkInvariants(t, p)
		})
	}
}

// TestComputedProfiles covers links other than the defaults, where the
// clamps and floors decide.
func TestComputedProfiles(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		link Link
		want want
	}{
		{
			// 10 Gbit/s across regions: BDP = 1.25 GB/s × 80 ms = 100 MB;
			// ×2 = 200 MB → clamped to 128 MiB.
			name: "fat cross-region link hits the buffer cap",
			mode: MultiRegion,
			link: Link{BandwidthMbps: 10_000, RTT: 80 * time.Millisecond, P95RTT: 120 * time.Millisecond},
			want: want{
				bufMax: 128 * mib, tcpRmemMax: 128 * mib, tcpWmemMax: 128 * mib, bbr: true,
				replTimeout: 120, replBacklog: 120 * mib,
				slaveNetTimeout: 8, heartbeat: "4",
				netRead: 60, netWrite: 120,
				connectTimeout: 3500 * time.Millisecond,
				kafka:          KafkaSettings{BatchBytes: mib, BatchSize: 1000, BatchTimeout: 40 * time.Millisecond, Compression: "zstd"},
			},
		},
		{
			// 8 Mbit/s = 1 MB/s: the backlog rate is capped at half the link,
			// 500 kB/s × 120 s = 60 MB → 58 MiB. P95 unset means RTT (30 ms).
			name: "thin WAN link caps the backlog write rate",
			mode: MultiRegion,
			link: Link{BandwidthMbps: 8, RTT: 30 * time.Millisecond},
			want: want{
				bufMax: 4 * mib, tcpRmemMax: 6 * mib, tcpWmemMax: 4 * mib, bbr: true,
				replTimeout: 120, replBacklog: 58 * mib,
				// RTO = 230 ms; 14 × RTO = 3.2 s; WAN floor 8.
				slaveNetTimeout: 8, heartbeat: "4",
				netRead: 60, netWrite: 120,
				// 3 s + 60 ms → 3.5 s.
				connectTimeout: 3500 * time.Millisecond,
				kafka:          KafkaSettings{BatchBytes: mib, BatchSize: 1000, BatchTimeout: 15 * time.Millisecond, Compression: "zstd"},
			},
		},
		{
			// 0.01 Mbit/s: 625 B/s × 60 s = 37.5 kB → the 1 MB floor.
			name: "starved LAN link keeps the redis.conf backlog floor",
			mode: SingleAZ,
			link: Link{BandwidthMbps: 0.01, RTT: time.Millisecond},
			want: want{
				bufMax: 4 * mib, tcpRmemMax: 6 * mib, tcpWmemMax: 4 * mib,
				replTimeout: 60, replBacklog: mib,
				slaveNetTimeout: 4, heartbeat: "2",
				semiSync: true, semiSyncTimeoutMS: 1000,
				netRead: 30, netWrite: 60,
				connectTimeout: 1500 * time.Millisecond,
				kafka:          KafkaSettings{BatchBytes: mib, BatchSize: 100, BatchTimeout: 5 * time.Millisecond, Compression: "lz4"},
			},
		},
		{
			// Geostationary satellite: RTT 600 ms, P95 800 ms. RTO = 1 s, so
			// 14 × RTO = 14 s now beats the WAN floor of 8; linger RTT/2 =
			// 300 ms is capped at 100 ms; BDP = 12.5 MB/s × 0.6 s = 7.5 MB,
			// ×2 = 15 MB → 15 MiB.
			name: "satellite link lets RTO drive slave_net_timeout",
			mode: MultiRegion,
			link: Link{BandwidthMbps: 100, RTT: 600 * time.Millisecond, P95RTT: 800 * time.Millisecond},
			want: want{
				bufMax: 15 * mib, tcpRmemMax: 15 * mib, tcpWmemMax: 15 * mib, bbr: true,
				replTimeout: 120, replBacklog: 120 * mib,
				slaveNetTimeout: 14, heartbeat: "7",
				netRead: 60, netWrite: 120,
				// 3 s + 1.6 s = 4.6 → 5 s.
				connectTimeout: 5 * time.Second,
				kafka:          KafkaSettings{BatchBytes: mib, BatchSize: 1000, BatchTimeout: 100 * time.Millisecond, Compression: "zstd"},
			},
		},
		{
			// Two regions 7 ms apart (P95 9 ms) behave like a LAN: semi-sync
			// across them is reasonable and LAN timeouts hold; the mode still
			// asks for BBR because the node carries a cross-region stream.
			name: "nearby regions count as LAN",
			mode: MultiRegion,
			link: Link{BandwidthMbps: 10_000, RTT: 7 * time.Millisecond, P95RTT: 9 * time.Millisecond},
			want: want{
				// BDP = 1.25 GB/s × 7 ms = 8.75 MB; ×2 = 17.5 MB → 17 MiB.
				bufMax: 17 * mib, tcpRmemMax: 17 * mib, tcpWmemMax: 17 * mib, bbr: true,
				replTimeout: 60, replBacklog: 60 * mib,
				slaveNetTimeout: 4, heartbeat: "2",
				semiSync: true, semiSyncTimeoutMS: 1000,
				netRead: 30, netWrite: 60,
				connectTimeout: 1500 * time.Millisecond,
				kafka:          KafkaSettings{BatchBytes: mib, BatchSize: 100, BatchTimeout: 5 * time.Millisecond, Compression: "lz4"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compute(tc.mode, tc.link)
			require.NoError(t, err)
			checkProfile(t, p, tc.want)
			checkInvariants(t, p)
		})
	}
}

func checkProfile(t *testing.T, p Profile, w want) {
	t.Helper()
	sys := p.Sysctls.Map()
	num := func(s Settings, key string) int64 {
		t.Helper()
		v, ok := s.Get(key)
		require.True(t, ok, "missing %s", key)
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err, "%s=%q", key, v)
		return n
	}
	assert.Equal(t, "4096", sys["net.core.somaxconn"])
	assert.Equal(t, "8192", sys["net.ipv4.tcp_max_syn_backlog"])
	assert.Equal(t, "0", sys["net.ipv4.tcp_slow_start_after_idle"])
	assert.Equal(t, "30", sys["net.ipv4.tcp_keepalive_time"])
	assert.Equal(t, "10", sys["net.ipv4.tcp_keepalive_intvl"])
	assert.Equal(t, "4", sys["net.ipv4.tcp_keepalive_probes"])
	assert.Equal(t, "15", sys["net.ipv4.tcp_fin_timeout"])
	assert.Equal(t, w.bufMax, num(p.Sysctls, "net.core.rmem_max"), "rmem_max")
	assert.Equal(t, w.bufMax, num(p.Sysctls, "net.core.wmem_max"), "wmem_max")
	assert.Equal(t, "4096 131072 "+strconv.FormatInt(w.tcpRmemMax, 10), sys["net.ipv4.tcp_rmem"])
	assert.Equal(t, "4096 16384 "+strconv.FormatInt(w.tcpWmemMax, 10), sys["net.ipv4.tcp_wmem"])
	if w.bbr {
		assert.Equal(t, "fq", sys["net.core.default_qdisc"])
		assert.Equal(t, "bbr", sys["net.ipv4.tcp_congestion_control"])
	} else {
		assert.NotContains(t, sys, "net.core.default_qdisc")
		assert.NotContains(t, sys, "net.ipv4.tcp_congestion_control")
	}

	rh := p.RedisHost.Map()
	assert.Equal(t, "1", rh["vm.overcommit_memory"])
	assert.Equal(t, "never", rh["/sys/kernel/mm/transparent_hugepage/enabled"])

	r := p.Redis.Map()
	assert.Equal(t, "4096", r["tcp-backlog"])
	assert.Equal(t, "30", r["tcp-keepalive"])
	assert.Equal(t, "10", r["repl-ping-replica-period"])
	assert.Equal(t, w.replTimeout, num(p.Redis, "repl-timeout"), "repl-timeout")
	assert.Equal(t, w.replBacklog, num(p.Redis, "repl-backlog-size"), "repl-backlog-size")
	assert.Equal(t, "yes", r["repl-diskless-sync"])
	assert.Equal(t, "0", r["repl-diskless-sync-delay"])

	m := p.MariaDB
	assert.Equal(t, w.slaveNetTimeout, num(m.Server, "slave_net_timeout"), "slave_net_timeout")
	assert.Equal(t, int64(500), num(m.Server, "max_connections"))
	assert.Equal(t, int64(4096), num(m.Server, "back_log"))
	assert.Equal(t, w.netRead, num(m.Server, "net_read_timeout"), "net_read_timeout")
	assert.Equal(t, w.netWrite, num(m.Server, "net_write_timeout"), "net_write_timeout")
	assert.Equal(t, w.semiSync, m.SemiSync, "semi-sync over the link")
	if w.semiSync {
		assert.Equal(t, w.semiSyncTimeoutMS, num(m.Server, "rpl_semi_sync_master_timeout"))
		assert.Equal(t, "AFTER_SYNC", m.Server.Map()["rpl_semi_sync_master_wait_point"])
	} else {
		_, ok := m.Server.Get("rpl_semi_sync_master_timeout")
		assert.False(t, ok, "no semi-sync timeout where semi-sync must not wait")
	}
	cm := m.ChangeMaster.Map()
	assert.Equal(t, "1", cm["MASTER_CONNECT_RETRY"])
	assert.Equal(t, w.heartbeat, cm["MASTER_HEARTBEAT_PERIOD"])

	assert.Equal(t, DialerSettings{
		ConnectTimeout: w.connectTimeout,
		KeepAlive:      KeepAlive{Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 4},
		UserTimeout:    70 * time.Second,
	}, p.Dialer)
	assert.Equal(t, w.kafka, p.Kafka)
}

// checkInvariants asserts relations that must hold for any link, whatever the
// individual numbers.
func checkInvariants(t *testing.T, p Profile) {
	t.Helper()
	for _, group := range []Settings{p.Sysctls, p.RedisHost, p.Redis, p.MariaDB.Server, p.MariaDB.ChangeMaster} {
		seen := map[string]bool{}
		for _, s := range group {
			assert.NotEmpty(t, s.Key)
			assert.NotEmpty(t, s.Value, s.Key)
			assert.NotEmpty(t, strings.TrimSpace(s.Why), "%s has no reason", s.Key)
			assert.False(t, seen[s.Key], "duplicate %s", s.Key)
			seen[s.Key] = true
		}
	}
	atoi := func(s Settings, key string) int64 {
		n, err := strconv.ParseInt(s.Map()[key], 10, 64)
		require.NoError(t, err, key)
		return n
	}
	// Redis caps tcp-backlog at somaxconn and warns; MariaDB's back_log too.
	assert.LessOrEqual(t, atoi(p.Redis, "tcp-backlog"), atoi(p.Sysctls, "net.core.somaxconn"))
	assert.LessOrEqual(t, atoi(p.MariaDB.Server, "back_log"), atoi(p.Sysctls, "net.core.somaxconn"))
	// repl-timeout must exceed the replica ping period (redis.conf), and the
	// backlog must not be smaller than the redis.conf default.
	assert.Greater(t, atoi(p.Redis, "repl-timeout"), atoi(p.Redis, "repl-ping-replica-period"))
	assert.GreaterOrEqual(t, atoi(p.Redis, "repl-timeout"), int64(60))
	assert.GreaterOrEqual(t, atoi(p.Redis, "repl-backlog-size"), int64(mib))
	// MariaDB refuses a heartbeat period above slave_net_timeout (error 1704).
	hb, err := strconv.ParseFloat(p.MariaDB.ChangeMaster.Map()["MASTER_HEARTBEAT_PERIOD"], 64)
	require.NoError(t, err)
	assert.Less(t, hb, float64(atoi(p.MariaDB.Server, "slave_net_timeout")))
	// Buffers: inside the clamp, and at least one BDP unless capped.
	buf := atoi(p.Sysctls, "net.core.rmem_max")
	assert.GreaterOrEqual(t, buf, int64(bufMin))
	assert.LessOrEqual(t, buf, int64(bufMax))
	if buf < bufMax {
		assert.GreaterOrEqual(t, float64(buf), bdp(p.Link))
	}
	// Cloudflare: TCP_USER_TIMEOUT ≈ keepalive idle + interval × count.
	ka := p.Dialer.KeepAlive
	assert.Equal(t, ka.Idle+ka.Interval*time.Duration(ka.Count), p.Dialer.UserTimeout)
	// The connect timeout survives at least one lost SYN (resent at 1 s).
	assert.Greater(t, p.Dialer.ConnectTimeout, time.Second)
	assert.Greater(t, p.Kafka.BatchTimeout, time.Duration(0))
	assert.Positive(t, p.Link.P95RTT, "P95RTT is filled in")
}

func TestSettingsAccessors(t *testing.T) {
	s := Settings{{Key: "a", Value: "1", Why: "x"}, {Key: "b", Value: "2", Why: "y"}}
	v, ok := s.Get("b")
	assert.True(t, ok)
	assert.Equal(t, "2", v)
	_, ok = s.Get("c")
	assert.False(t, ok)
	assert.Equal(t, map[string]string{"a": "1", "b": "2"}, s.Map())
}

func TestDefaultLinksAreValid(t *testing.T) {
	var prev Link
	for _, m := range Modes() {
		l, err := DefaultLink(m)
		require.NoError(t, err, m)
		require.NoError(t, l.Validate(), m)
		// each mode is at least as far as the previous one.
		assert.GreaterOrEqual(t, l.RTT, prev.RTT, m)
		prev = l
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	assert.False(t, errors.Is(&ModeError{Input: "x"}, ErrInvalidLink))
	assert.False(t, errors.Is(&LinkError{Field: "RTT"}, ErrUnknownMode))
}
