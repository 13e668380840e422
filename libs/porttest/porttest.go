// Package porttest hands tests loopback TCP ports for servers they start a
// while later (mariadbd, redis-server, an HTTP server of another process).
// It is for tests only; it does not start anything.
//
// A port taken from the kernel (listen on port 0, close, start the server on
// it later) comes from the ephemeral range, which every outgoing connection
// on the host also draws its local port from. On a busy host a client socket
// takes the port in the seconds before the server binds it (a MariaDB data
// directory template alone takes ~5 s), and the start fails with "address
// already in use". Ports from here come from below the ephemeral range,
// where only explicit binds compete.
package porttest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// low is the lowest port handed out: above the ports system services and
// common development servers listen on.
const low = 10000

// defaultEphemeralLow is Linux's default start of the ephemeral range, used
// when /proc does not say.
const defaultEphemeralLow = 32768

// given are the ports handed out in this process: several tests of one
// binary pick ports before any of their servers has bound one.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// ErrNoPort is returned when no free port was found.
var ErrNoPort = errors.New("porttest: no free port")

// Free returns a loopback port below the ephemeral range that is free now
// and not handed out before in this process; it fails the test otherwise.
func Free(t testing.TB) int {
	t.Helper()
	p, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Pick is Free for code that may not fail the test from its goroutine.
func Pick() (int, error) {
	high := ephemeralLow()
	given.Lock()
	defer given.Unlock()
	for range 1000 {
		p := low + rand.IntN(high-low)
		if given.ports[p] || !bindable(p) {
			continue
		}
		given.ports[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("%w in [%d, %d)", ErrNoPort, low, high)
}

func bindable(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ephemeralLow is the first port of the host's ephemeral range, never
// below low+1000 so that there is a range to pick from.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeralLow
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultEphemeralLow
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return defaultEphemeralLow
	}
	return max(n, low+1000)
}
