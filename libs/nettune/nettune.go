// Package nettune computes Canopy's network tuning profile for one class of
// link between the nodes of an instance: the kernel settings a node should
// get, the engine settings Redis and MariaDB should run with, the dialer
// Canopy's own clients (probes, drivers, CDC) use and the Kafka batching that
// suits the link. A profile is derived from the deployment mode
// (single-az, multi-az, multi-region) and the link's bandwidth and RTT, and
// every value carries the reason it has, so it can be shown to users.
//
// The package only computes. It never touches a host, a socket option of a
// server, or a running engine: the local process driver applies the engine
// settings when it starts a node, node sysctls are recorded on the node (and
// shown in the instance view) for the Kubernetes driver to apply, and the one
// thing that acts is [DialerSettings.Dialer], which configures sockets that the
// caller itself opens.
//
// A profile describes one link. A multi-region instance has two: its primary
// group's AZs (use the multi-az profile for them) and the cross-region link to
// the disaster-recovery replica (the multi-region profile).
//
// Where a value comes from is cited next to it. The sources are the RabbitMQ
// networking guide (rabbitmq.com/docs/networking), redis.conf and the Redis
// sources, the orchestrator docs (openark/orchestrator, its MySQL replication
// settings advice), Cloudflare's "When TCP sockets refuse to die"
// (blog.cloudflare.com/when-tcp-sockets-refuse-to-die), the Apache Kafka
// operations docs and ESnet fasterdata host tuning (fasterdata.es.net). Values
// marked "judgement" are Canopy's own choice with the reason given.
package nettune

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Mode is a deployment mode, as the catalog's plans name it.
type Mode string

// The deployment modes.
const (
	// SingleAZ keeps every node in one availability zone.
	SingleAZ Mode = "single-az"
	// MultiAZ spreads the nodes over the zones of one region.
	MultiAZ Mode = "multi-az"
	// MultiRegion adds a disaster-recovery replica in another region.
	MultiRegion Mode = "multi-region"
)

// Modes lists every deployment mode, in order of increasing distance.
func Modes() []Mode { return []Mode{SingleAZ, MultiAZ, MultiRegion} }

// Valid reports whether m is one of the known modes.
func (m Mode) Valid() bool {
	switch m {
	case SingleAZ, MultiAZ, MultiRegion:
		return true
	}
	return false
}

// ErrUnknownMode is matched (errors.Is) by every [ModeError].
var ErrUnknownMode = errors.New("unknown deployment mode")

// ModeError reports a deployment mode that is not one of [Modes].
type ModeError struct {
	// Input is the rejected value.
	Input string
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("nettune: unknown deployment mode %q (want %q, %q or %q)",
		e.Input, SingleAZ, MultiAZ, MultiRegion)
}

// Unwrap returns ErrUnknownMode.
func (e *ModeError) Unwrap() error { return ErrUnknownMode }

// ParseMode returns the Mode named s, or a *ModeError.
func ParseMode(s string) (Mode, error) {
	if m := Mode(s); m.Valid() {
		return m, nil
	}
	return "", &ModeError{Input: s}
}

// Link describes the network path between the nodes a profile is for.
type Link struct {
	// BandwidthMbps is the bandwidth available to the instance's traffic on
	// the path, in megabits (10^6 bit) per second.
	BandwidthMbps float64
	// RTT is the typical (median) round-trip time; buffers are sized from it.
	RTT time.Duration
	// P95RTT is the 95th percentile round-trip time; timeouts are derived
	// from it. Zero means "same as RTT".
	P95RTT time.Duration
}

// Bounds that catch unit mistakes (a bandwidth in bit/s, an RTT in seconds
// passed as a bare number) rather than describe real limits.
const (
	maxBandwidthMbps = 1_000_000 // 1 Tbit/s
	maxRTT           = 10 * time.Second
)

// ErrInvalidLink is matched (errors.Is) by every [LinkError].
var ErrInvalidLink = errors.New("invalid link")

// LinkError names the Link field that is out of range and why.
type LinkError struct {
	// Field is the Go name of the offending field, e.g. "RTT".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("nettune: invalid link: %s %s", e.Field, e.Reason)
}

// Unwrap returns ErrInvalidLink.
func (e *LinkError) Unwrap() error { return ErrInvalidLink }

// Validate returns a *LinkError for the first field out of range.
func (l Link) Validate() error {
	switch bw := l.BandwidthMbps; {
	case math.IsNaN(bw) || math.IsInf(bw, 0):
		return &LinkError{Field: "BandwidthMbps", Reason: "must be a finite number"}
	case bw <= 0:
		return &LinkError{Field: "BandwidthMbps", Reason: fmt.Sprintf("must be > 0, got %g", bw)}
	case bw > maxBandwidthMbps:
		return &LinkError{Field: "BandwidthMbps", Reason: fmt.Sprintf("must be <= %d (1 Tbit/s), got %g", maxBandwidthMbps, bw)}
	}
	switch {
	case l.RTT <= 0:
		return &LinkError{Field: "RTT", Reason: fmt.Sprintf("must be > 0, got %s", l.RTT)}
	case l.RTT > maxRTT:
		return &LinkError{Field: "RTT", Reason: fmt.Sprintf("must be <= %s, got %s", maxRTT, l.RTT)}
	}
	switch {
	case l.P95RTT < 0:
		return &LinkError{Field: "P95RTT", Reason: fmt.Sprintf("must be >= 0 (0 means RTT), got %s", l.P95RTT)}
	case l.P95RTT > maxRTT:
		return &LinkError{Field: "P95RTT", Reason: fmt.Sprintf("must be <= %s, got %s", maxRTT, l.P95RTT)}
	case l.P95RTT > 0 && l.P95RTT < l.RTT:
		return &LinkError{Field: "P95RTT", Reason: fmt.Sprintf("must be >= RTT (%s), got %s", l.RTT, l.P95RTT)}
	}
	return nil
}

// p95 returns P95RTT, or RTT when it is unset.
func (l Link) p95() time.Duration {
	if l.P95RTT > 0 {
		return l.P95RTT
	}
	return l.RTT
}

// bytesPerSecond is the link's bandwidth in bytes per second.
func (l Link) bytesPerSecond() float64 { return l.BandwidthMbps * 1e6 / 8 }

// DefaultLink returns the link Canopy assumes for a mode when the inventory
// gives no measurement. These are assumptions, sized towards the worse end of
// each range so the derived buffers and timeouts are not too small:
//
//   - single-az: 0.2 ms RTT (0.5 ms P95), 10 Gbit/s. Same-zone RTTs are
//     ~0.1–1 ms (reference notes §7.2, "intra-AZ RTT ~0.1–1 ms"); 10 Gbit/s
//     is the common baseline NIC of database-sized cloud instances.
//   - multi-az: 2 ms RTT (4 ms P95), 10 Gbit/s. Cloud providers state
//     single-digit-millisecond latency between the zones of a region
//     (e.g. AWS "Regions and Availability Zones"); measured cross-AZ RTTs are
//     typically 1–2 ms, and scheduling's test inventory uses 2 ms.
//   - multi-region: 80 ms RTT (120 ms P95), 1 Gbit/s. Inter-region RTTs within
//     a continent are ~40–80 ms (e.g. US east–west ~60–70 ms, EU–US east
//     ~80 ms); 1 Gbit/s is the share of inter-region capacity one instance's
//     replication and CDC traffic may expect (judgement).
func DefaultLink(m Mode) (Link, error) {
	switch m {
	case SingleAZ:
		return Link{BandwidthMbps: 10_000, RTT: 200 * time.Microsecond, P95RTT: 500 * time.Microsecond}, nil
	case MultiAZ:
		return Link{BandwidthMbps: 10_000, RTT: 2 * time.Millisecond, P95RTT: 4 * time.Millisecond}, nil
	case MultiRegion:
		return Link{BandwidthMbps: 1_000, RTT: 80 * time.Millisecond, P95RTT: 120 * time.Millisecond}, nil
	}
	return Link{}, &ModeError{Input: string(m)}
}

// Setting is one named value with the reason for it.
type Setting struct {
	// Key is the sysctl name, sysfs path or engine variable.
	Key string `json:"key"`
	// Value is the value in the form the engine or kernel accepts.
	Value string `json:"value"`
	// Why says where the value comes from.
	Why string `json:"why"`
}

// Settings is an ordered list of settings; order is the order of application.
type Settings []Setting

// Get returns the value of key and whether it is present.
func (s Settings) Get(key string) (string, bool) {
	for _, st := range s {
		if st.Key == key {
			return st.Value, true
		}
	}
	return "", false
}

// Map returns the settings as key → value.
func (s Settings) Map() map[string]string {
	m := make(map[string]string, len(s))
	for _, st := range s {
		m[st.Key] = st.Value
	}
	return m
}

// MariaDB holds the MariaDB settings of a profile.
type MariaDB struct {
	// Server are server system variables (mariadbd --name=value or
	// SET GLOBAL where dynamic).
	Server Settings
	// ChangeMaster are options for CHANGE MASTER TO on replicas.
	ChangeMaster Settings
	// SemiSync reports whether semi-synchronous replication may wait on this
	// link; when false the replicas across it must stay asynchronous
	// (rpl_semi_sync_slave_enabled=OFF) whatever the plan says for the others.
	SemiSync bool
}

// Profile is the tuning for one deployment mode over one link.
type Profile struct {
	// Mode is the deployment mode the profile is for.
	Mode Mode
	// Link is the link it was computed from (P95RTT filled in).
	Link Link
	// Sysctls are kernel settings for every node.
	Sysctls Settings
	// RedisHost are host settings only nodes running Redis need; the
	// transparent-huge-pages entry is a sysfs path, not a sysctl.
	RedisHost Settings
	// Redis are redis.conf directives (redis-server --name value).
	Redis Settings
	// MariaDB are MariaDB server variables and replication options.
	MariaDB MariaDB
	// Dialer is for Canopy's own clients of the nodes.
	Dialer DialerSettings
	// Kafka is the producer batching for the link to the brokers.
	Kafka KafkaSettings
}

// Compute returns the profile for mode over link, or a *ModeError or
// *LinkError.
func Compute(mode Mode, link Link) (Profile, error) {
	if !mode.Valid() {
		return Profile{}, &ModeError{Input: string(mode)}
	}
	if err := link.Validate(); err != nil {
		return Profile{}, err
	}
	link.P95RTT = link.p95()
	return Profile{
		Mode:      mode,
		Link:      link,
		Sysctls:   nodeSysctls(mode, link),
		RedisHost: redisHost(),
		Redis:     redisSettings(link),
		MariaDB:   mariaDBSettings(link),
		Dialer:    dialerSettings(link),
		Kafka:     kafkaSettings(link),
	}, nil
}

// Default returns the profile for mode over its [DefaultLink].
func Default(mode Mode) (Profile, error) {
	link, err := DefaultLink(mode)
	if err != nil {
		return Profile{}, err
	}
	return Compute(mode, link)
}
