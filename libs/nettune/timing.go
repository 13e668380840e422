package nettune

import (
	"math"
	"time"
)

// The timing model every timeout in a profile is derived from.
//
// Linux computes the retransmission timeout as SRTT + RTTVAR, with RTTVAR
// floored at TCP_RTO_MIN = 200 ms (net/ipv4/tcp_input.c, tcp_rtt_estimator and
// __tcp_set_rto), so a lost segment is resent after about RTT + 200 ms and each
// further loss doubles the wait. On a LAN the 200 ms floor dominates; across
// regions the RTT starts to matter. We use the P95 RTT, since a timeout has to
// hold in the bad case, not the median one.
const (
	rtoMin = 200 * time.Millisecond
	// synRTO is the initial retransmission timeout of a SYN (RFC 6298 §2.1;
	// Linux TCP_TIMEOUT_INIT): a lost SYN is resent after 1 s, then 2 s more.
	synRTO = time.Second
	// wanRTT is where a link stops being a LAN: cross-AZ paths stay within a
	// few ms, cross-region ones start around 10 ms.
	wanRTT = 10 * time.Millisecond
)

// rto approximates Linux's retransmission timeout on the link.
func rto(l Link) time.Duration { return l.p95() + rtoMin }

// wan reports whether the link is a wide-area one (P95 RTT ≥ 10 ms).
func wan(l Link) bool { return l.p95() >= wanRTT }

// patience is the factor by which timeouts whose false alarms are expensive
// grow on a WAN (judgement): across regions loss bursts last longer in wall
// time (every retransmission waits RTT + 200 ms, doubling), and a false
// timeout there costs a reconnect and often a full resynchronisation over the
// scarcest, most expensive link. Failover is never decided from these engine
// timeouts (healthcheck and failover decide), so being slower to give up costs
// little.
func patience(l Link) int {
	if wan(l) {
		return 2
	}
	return 1
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// ceilTo rounds d up to a multiple of unit.
func ceilTo(d, unit time.Duration) time.Duration {
	if r := d % unit; r != 0 {
		return d + unit - r
	}
	return d
}
