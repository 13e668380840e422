package porttest

import (
	"net"
	"strconv"
	"testing"
)

func TestFree(t *testing.T) {
	high := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := Free(t)
		if p < low || p >= high {
			t.Fatalf("port %d outside [%d, %d): the ephemeral range is shared with outgoing connections", p, low, high)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestBindableSeesListener(t *testing.T) {
	p := Free(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if bindable(p) {
		t.Fatalf("port %d reads bindable while a listener holds it", p)
	}
}
