package nettune

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

const (
	// redisKeepalive is redis.conf tcp-keepalive. Redis sets TCP_KEEPIDLE to
	// the value, TCP_KEEPINTVL to a third of it and TCP_KEEPCNT to 3
	// (anetKeepAlive in src/anet.c), so 30 gives 30 s / 10 s × 3, the RabbitMQ
	// guide's timings, instead of the 300 s default.
	redisKeepalive = 30
	// redisPingPeriod is repl-ping-replica-period, kept at its default of 10 s;
	// repl-timeout must stay well above it (redis.conf).
	redisPingPeriod = 10
	// redisReplTimeout is repl-timeout on a LAN: the redis.conf default of
	// 60 s, six ping periods.
	redisReplTimeout = 60
	// DefaultRedisWriteRate is the replication stream rate a Redis primary is
	// assumed to produce when sizing repl-backlog-size, in bytes per second:
	// about 10,000 writes/s of ~100 bytes (judgement: a busy small instance).
	DefaultRedisWriteRate = 1 * mib
	// redisBacklogMin is the redis.conf default repl-backlog-size (1 MB).
	redisBacklogMin = 1 * mib

	// slaveNetTimeoutLAN is orchestrator's advice: slave_net_timeout=4, which
	// makes the replica's heartbeat 2 s (half of it) and notices a dead
	// primary connection within 4 s instead of MariaDB's default 60 s.
	slaveNetTimeoutLAN = 4
	// maxConnections is max_connections (judgement): MariaDB's 151 is used up
	// by a few pooled application replicas (10 pods × 20 connections = 200)
	// plus Canopy's admin, monitor and CDC connections. The plan's memory is
	// the real ceiling; a driver may lower it for the smallest plans.
	maxConnections = 500
	// netReadTimeoutLAN/netWriteTimeoutLAN are MariaDB's defaults (30 s /
	// 60 s): ample on a LAN.
	netReadTimeoutLAN  = 30
	netWriteTimeoutLAN = 60
	// semiSyncTimeoutMin is the floor of rpl_semi_sync_master_timeout: a
	// commit stalls at most 1 s when no semi-sync replica answers, then the
	// primary falls back to asynchronous replication (and healthcheck reports
	// it), instead of MariaDB's 10 s default stall.
	semiSyncTimeoutMin = time.Second
)

// redisReplTimeoutFor returns repl-timeout in seconds for the link: the
// default 60 s on a LAN, doubled on a WAN (see patience) — a replica dropped
// across regions re-synchronises over the slowest link.
func redisReplTimeoutFor(l Link) int64 { return int64(redisReplTimeout * patience(l)) }

// redisBacklogFor returns repl-backlog-size in bytes. The backlog must hold
// what the primary writes while a replica is disconnected for as long as a
// disconnection can go unnoticed (repl-timeout), so that the replica comes
// back with a partial resync instead of a full one. The write rate is
// DefaultRedisWriteRate, but never more than half the link could carry.
// Rounded up to MiB, floored at the 1 MB default.
func redisBacklogFor(l Link) int64 {
	rate := math.Min(DefaultRedisWriteRate, l.bytesPerSecond()/2)
	b := rate * float64(redisReplTimeoutFor(l))
	b = math.Ceil(b/mib) * mib
	return int64(math.Max(b, redisBacklogMin))
}

// redisSettings returns the redis.conf directives for the link.
func redisSettings(l Link) Settings {
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	timeout := redisReplTimeoutFor(l)
	backlog := redisBacklogFor(l)
	return Settings{
		{"tcp-backlog", itoa(somaxconn),
			"accept queue for reconnect storms after a failover; redis.conf default 511 is limited by somaxconn, which the node sysctls raise to 4096 (Redis caps it and warns if the host's somaxconn is lower)"},
		{"tcp-keepalive", itoa(redisKeepalive),
			"Redis sets idle=30 s, interval=10 s, count=3 from this (src/anet.c): dead clients and replicas are noticed in ~60 s, matching the node keepalive (redis.conf default 300)"},
		{"repl-ping-replica-period", itoa(redisPingPeriod),
			"redis.conf default; repl-timeout is kept a multiple of it"},
		{"repl-timeout", itoa(timeout),
			fmt.Sprintf("redis.conf default 60 s on a LAN, doubled on a WAN link (P95 RTT %s): a replica dropped there needs a full resync over the slowest link", l.p95())},
		{"repl-backlog-size", itoa(backlog),
			fmt.Sprintf("holds %s/s of writes for repl-timeout (%d s) so a replica that reconnects before being dropped gets a partial resync; floor 1 MB (redis.conf default); Redis ≥ 7.0 fills it on demand from the shared replication buffer",
				humanBytes(int64(math.Min(DefaultRedisWriteRate, l.bytesPerSecond()/2))), timeout)},
		{"repl-diskless-sync", "yes",
			"stream the RDB to replicas without touching the primary's disk (redis.conf; default since 7.0)"},
		{"repl-diskless-sync-delay", "0",
			"the 5 s default delays every full sync waiting for more replicas; Canopy attaches replicas one at a time and wants them fast"},
	}
}

// slaveNetTimeoutFor returns slave_net_timeout in seconds. Orchestrator's 4 s
// is what survives a missed 2 s heartbeat followed by three back-to-back
// retransmissions at the minimum RTO (2 s + 0.2 + 0.4 + 0.8 s < 4 s): in
// general timeout ≥ timeout/2 + 7 × RTO, i.e. ≥ 14 × RTO. On a WAN the floor
// is doubled (see patience).
func slaveNetTimeoutFor(l Link) int64 {
	return max(int64(slaveNetTimeoutLAN*patience(l)), ceilSeconds(14*rto(l)))
}

// semiSyncTimeoutFor returns rpl_semi_sync_master_timeout in milliseconds:
// long enough for the ack to survive two retransmissions (RTO + 2 × RTO),
// never below 1 s.
func semiSyncTimeoutFor(l Link) int64 {
	return max(semiSyncTimeoutMin, ceilTo(3*rto(l), 100*time.Millisecond)).Milliseconds()
}

// mariaDBSettings returns the MariaDB settings for the link.
func mariaDBSettings(l Link) MariaDB {
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	p := int64(patience(l))
	snt := slaveNetTimeoutFor(l)
	server := Settings{
		{"slave_net_timeout", itoa(snt),
			fmt.Sprintf("orchestrator: 4 s (2 s heartbeats) instead of 60 s; ≥ 14 × RTO (%s) so a missed heartbeat plus three retransmissions never trips it; doubled on a WAN", rto(l))},
		{"max_connections", itoa(maxConnections),
			"MariaDB's 151 is used up by a few pooled application replicas plus Canopy's admin, monitor and CDC connections (judgement; plan memory is the ceiling)"},
		{"back_log", itoa(somaxconn),
			"listen backlog for reconnect storms after a failover, as large as the node's somaxconn allows (default 80 + max_connections/5)"},
		{"net_read_timeout", itoa(netReadTimeoutLAN * p),
			"MariaDB default 30 s on a LAN; doubled on a WAN so dumps, snapshots and CDC readers across regions are not cut off by a stall"},
		{"net_write_timeout", itoa(netWriteTimeoutLAN * p),
			"MariaDB default 60 s on a LAN; doubled on a WAN for the same reason"},
	}
	semi := !wan(l)
	if semi {
		server = append(server,
			Setting{"rpl_semi_sync_master_timeout", itoa(semiSyncTimeoutFor(l)),
				fmt.Sprintf("ms a commit waits for a replica's ack before falling back to async: 3 × RTO (%s) so the ack survives two retransmissions, floor 1 s (MariaDB default 10 s stalls every commit for 10 s when the replica is gone)", rto(l))},
			Setting{"rpl_semi_sync_master_wait_point", "AFTER_SYNC",
				"lossless semi-sync: no client sees a commit before a replica has it (MariaDB's default is AFTER_COMMIT); only applies where the plan enables semi-sync"},
		)
	}
	return MariaDB{
		Server: server,
		ChangeMaster: Settings{
			{"MASTER_CONNECT_RETRY", "1",
				"retry the primary every second (orchestrator; default 60 s), so a replica re-attaches as soon as the primary is back"},
			{"MASTER_HEARTBEAT_PERIOD", strconv.FormatFloat(float64(snt)/2, 'f', -1, 64),
				"half of slave_net_timeout, set explicitly because a changed slave_net_timeout does not update an existing replica's heartbeat"},
		},
		SemiSync: semi,
	}
}
