package proxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

const benchChunk = 1 << 20

// sink acknowledges every benchChunk bytes it reads with one byte.
func sink(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, err := io.CopyN(io.Discard, c, benchChunk); err != nil {
						return
					}
					if _, err := c.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// BenchmarkForward sends 1 MiB chunks to a sink, each acknowledged, over a
// direct connection and over one through the proxy, alternately, and
// reports both throughputs and their ratio (proxy/direct; 1 = free).
func BenchmarkForward(b *testing.B) {
	backendAddr := sink(b)
	port := freePort(b)
	tbl := table.New()
	tbl.Apply(table.Instance{ID: "bench", RWPort: port, Nodes: []table.Node{node("n1", backendAddr, table.Primary)}})
	startProxy(b, Config{}, tbl)
	waitListening(b, port)

	direct, err := net.Dial("tcp", backendAddr)
	require.NoError(b, err)
	defer direct.Close()
	proxied, err := net.Dial("tcp", addr(port))
	require.NoError(b, err)
	defer proxied.Close()

	buf := make([]byte, benchChunk)
	ack := make([]byte, 1)
	send := func(c net.Conn) time.Duration {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, ack); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	send(direct) // warm both paths
	send(proxied)

	var dDirect, dProxy time.Duration
	b.ResetTimer()
	for range b.N {
		dDirect += send(direct)
		dProxy += send(proxied)
	}
	b.StopTimer()
	mb := float64(b.N) * benchChunk / 1e6
	b.ReportMetric(mb/dDirect.Seconds(), "direct_MB/s")
	b.ReportMetric(mb/dProxy.Seconds(), "proxy_MB/s")
	b.ReportMetric(dDirect.Seconds()/dProxy.Seconds(), "proxy/direct")
}
