package instance

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrRouterPortsExhausted: every port of the router's range is held by a
// live instance, so a new instance gets no stable endpoints; the order is
// refused until a delete returns ports to the pool.
var ErrRouterPortsExhausted = errors.New("no free router port pair in the configured range")

// RouterPorts are an instance's two ports on the router: RW forwards to the
// current primary, RO to the replicas. Zero means none allocated (an
// instance created without the router). They never change for the
// instance's lifetime, so a restarted router listens on the same ports.
type RouterPorts struct {
	RW int `json:"rw,omitempty"`
	RO int `json:"ro,omitempty"`
}

// Allocated reports whether the instance has router ports.
func (p RouterPorts) Allocated() bool { return p.RW != 0 && p.RO != 0 }

// PortRange is an inclusive range of TCP ports.
type PortRange struct {
	Lo, Hi int
}

// ParsePortRange parses "lo-hi" (inclusive); it must lie within
// 1024..65535 and hold at least two ports (one instance's pair).
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return PortRange{}, fmt.Errorf("port range %q: want lo-hi", s)
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("port range %q: want two integers lo-hi", s)
	}
	r := PortRange{Lo: l, Hi: h}
	if r.Lo < 1024 || r.Hi > 65535 || r.Hi-r.Lo+1 < 2 {
		return PortRange{}, fmt.Errorf("port range %q: must lie within 1024-65535 and hold at least 2 ports", s)
	}
	return r, nil
}

// Empty reports whether the range holds no port (no allocation).
func (r PortRange) Empty() bool { return r.Hi < r.Lo || r.Lo == 0 }

// AllocateRouterPorts picks the lowest two ports of r that are not in use:
// RW the lowest, RO the next. It is ErrRouterPortsExhausted when fewer
// than two are free.
func AllocateRouterPorts(r PortRange, used map[int]bool) (RouterPorts, error) {
	var got []int
	for p := r.Lo; p <= r.Hi && len(got) < 2 && !r.Empty(); p++ {
		if !used[p] {
			got = append(got, p)
		}
	}
	if len(got) < 2 {
		return RouterPorts{}, fmt.Errorf("%w %d-%d", ErrRouterPortsExhausted, r.Lo, r.Hi)
	}
	return RouterPorts{RW: got[0], RO: got[1]}, nil
}

// Router is where clients reach the router's replicas: the host of every
// router endpoint (a Kubernetes Service, a DNS name) and the Sentinel port
// advertised for Redis. An empty Host disables router endpoints: clients
// are given the primary node's address.
type Router struct {
	Host         string
	SentinelPort int
	// Ports is the range new instances' port pairs come from.
	Ports PortRange
}

// Enabled reports whether instances get router ports and endpoints.
func (r Router) Enabled() bool { return r.Host != "" && !r.Ports.Empty() }

// RouterEndpoints are an instance's stable client endpoints on the router,
// as "host:port".
type RouterEndpoints struct {
	RW       string
	RO       string
	Sentinel string
	// MasterName is the name Sentinel clients ask for (the instance's name).
	MasterName string
}

// RouterEndpoints returns the instance's router endpoints, false when the
// router is disabled, the instance has no ports or it is deleted.
func (in *Instance) RouterEndpoints(r Router) (RouterEndpoints, bool) {
	if r.Host == "" || !in.Router.Allocated() || in.State == StateDeleted {
		return RouterEndpoints{}, false
	}
	e := RouterEndpoints{
		RW: net.JoinHostPort(r.Host, strconv.Itoa(in.Router.RW)),
		RO: net.JoinHostPort(r.Host, strconv.Itoa(in.Router.RO)),
	}
	if in.Plan.Engine == EngineRedis && r.SentinelPort > 0 {
		e.Sentinel = net.JoinHostPort(r.Host, strconv.Itoa(r.SentinelPort))
		e.MasterName = in.Name
	}
	return e, true
}
