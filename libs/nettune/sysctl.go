package nettune

import (
	"fmt"
	"math"
	"strconv"
)

const (
	kib = 1 << 10
	mib = 1 << 20

	// somaxconn caps every listen() backlog on the host. RabbitMQ networking
	// guide: ≥ 4096 (the kernel default was 128 before Linux 5.4); Redis warns
	// at start when it is below its tcp-backlog.
	somaxconn = 4096
	// synBacklog is tcp_max_syn_backlog; the RabbitMQ guide gives 4096–8192.
	// We take the top: half-open connections are cheap and a reconnect storm
	// after a failover is exactly when they pile up.
	synBacklog = 8192

	// Keepalive after RabbitMQ's networking guide: first probe after 30 s of
	// silence, then every 10 s, dead after 4 unanswered → ~70 s, against
	// Linux's 7200/75/9 (over two hours). The same numbers drive the dialer.
	keepaliveIdleSec     = 30
	keepaliveIntervalSec = 10
	keepaliveProbes      = 4

	// finTimeout is tcp_fin_timeout: RabbitMQ's guide gives 15–30 s for high
	// connection churn (default 60). Nodes see constant churn from health
	// probes, so orphaned FIN-WAIT-2 sockets should go quickly.
	finTimeout = 15

	// Socket buffer bounds, from ESnet fasterdata host tuning and reference
	// notes §7.2: below 4 MiB a single stream cannot fill even a modest
	// cross-AZ path; above 128 MiB memory per socket outweighs any gain
	// (fasterdata's settings for 100G hosts top out there).
	bufMin = 4 * mib
	bufMax = 128 * mib
	// bdpHeadroom: Linux charges per-packet overhead to the buffer (by default
	// only about half of tcp_rmem counts as window, tcp_adv_win_scale), and the
	// RTT under load exceeds the median, so buffers get twice the BDP.
	bdpHeadroom = 2

	// The kernel's own autotuning ceilings (Documentation/networking/
	// ip-sysctl.rst: tcp_rmem max "between 131072 and 6MB", tcp_wmem max
	// "between 64K and 4MB", by RAM). A profile never lowers them.
	kernelRmemMax = 6 * mib
	kernelWmemMax = 4 * mib
	// The kernel's defaults for the initial buffer of a socket; a profile
	// leaves them alone and only raises the maximum autotuning may reach.
	// (fasterdata shows the older 87380 / 65536.)
	kernelRmemDefault = 131072
	kernelWmemDefault = 16384
)

// bdp returns the bandwidth-delay product of the link in bytes: what has to be
// in flight to keep the path full. 10 Gbit/s × 50 ms ≈ 62.5 MB (reference
// notes §7.2).
func bdp(l Link) float64 { return l.bytesPerSecond() * l.RTT.Seconds() }

// socketBufferMax is the buffer maximum for the link: 2 × BDP rounded up to
// whole MiB, clamped to [4 MiB, 128 MiB].
func socketBufferMax(l Link) int64 {
	b := bdpHeadroom * bdp(l)
	b = math.Ceil(b/mib) * mib
	return int64(math.Min(math.Max(b, bufMin), bufMax))
}

// nodeSysctls returns the kernel settings every node of the mode gets.
func nodeSysctls(mode Mode, l Link) Settings {
	buf := socketBufferMax(l)
	rmem := max(buf, kernelRmemMax)
	wmem := max(buf, kernelWmemMax)
	bufWhy := fmt.Sprintf("2 × BDP (%.0f Mbit/s × %s = %s) rounded up to MiB, clamped to 4–128 MiB (ESnet fasterdata host tuning)",
		l.BandwidthMbps, l.RTT, humanBytes(int64(bdp(l))))
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }

	s := Settings{
		{"net.core.somaxconn", itoa(somaxconn),
			"accept-queue cap for every listener; ≥ 4096 per the RabbitMQ networking guide (kernel default 128 before 5.4); lets Redis tcp-backlog and MariaDB back_log take effect"},
		{"net.ipv4.tcp_max_syn_backlog", itoa(synBacklog),
			"half-open connection queue; RabbitMQ networking guide gives 4096–8192, top of range for reconnect storms after a failover"},
		{"net.ipv4.tcp_slow_start_after_idle", "0",
			"keep the congestion window across idle periods (RFC 2861 behaviour otherwise resets it after one RTO), so bursty replication and pooled client connections restart at full speed"},
		{"net.ipv4.tcp_keepalive_time", itoa(keepaliveIdleSec),
			"first keepalive probe after 30 s idle (RabbitMQ networking guide; Linux default 7200 s)"},
		{"net.ipv4.tcp_keepalive_intvl", itoa(keepaliveIntervalSec),
			"10 s between keepalive probes (RabbitMQ networking guide; Linux default 75 s)"},
		{"net.ipv4.tcp_keepalive_probes", itoa(keepaliveProbes),
			"4 unanswered probes: a silent dead peer is dropped after ~70 s (RabbitMQ networking guide; Linux default 9)"},
		{"net.ipv4.tcp_fin_timeout", itoa(finTimeout),
			"free orphaned FIN-WAIT-2 sockets after 15 s under probe and client churn (RabbitMQ networking guide: 15–30; default 60)"},
		{"net.core.rmem_max", itoa(buf), "cap for SO_RCVBUF: " + bufWhy},
		{"net.core.wmem_max", itoa(buf), "cap for SO_SNDBUF: " + bufWhy},
		{"net.ipv4.tcp_rmem", fmt.Sprintf("4096 %d %d", kernelRmemDefault, rmem),
			"receive autotuning ceiling: " + bufWhy + "; never below the kernel's 6 MiB; min and default left at kernel values"},
		{"net.ipv4.tcp_wmem", fmt.Sprintf("4096 %d %d", kernelWmemDefault, wmem),
			"send autotuning ceiling: " + bufWhy + "; never below the kernel's 4 MiB; min and default left at kernel values"},
	}
	if mode == MultiRegion {
		s = append(s,
			Setting{"net.core.default_qdisc", "fq",
				"fair-queue pacing for BBR on the long cross-region path (ESnet fasterdata host tuning)"},
			Setting{"net.ipv4.tcp_congestion_control", "bbr",
				"BBR keeps throughput on long, slightly lossy paths where loss-based CUBIC collapses (ESnet fasterdata); needs the tcp_bbr module"},
		)
	}
	return s
}

// redisHost returns the host settings Redis asks for at start-up.
func redisHost() Settings {
	return Settings{
		{"vm.overcommit_memory", "1",
			"BGSAVE and full-sync forks must not fail for lack of overcommit; Redis warns at start otherwise (redis.conf / redis.io latency docs)"},
		{"/sys/kernel/mm/transparent_hugepage/enabled", "never",
			"sysfs, not a sysctl: THP makes fork copy-on-write pages 2 MiB and causes latency spikes and memory growth; Redis warns at start otherwise (redis.io latency docs)"},
	}
}

// humanBytes renders n in the largest binary unit that keeps one decimal.
func humanBytes(n int64) string {
	switch {
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	case n >= kib:
		return fmt.Sprintf("%.1f KiB", float64(n)/kib)
	}
	return fmt.Sprintf("%d B", n)
}
