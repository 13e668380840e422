package checker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
)

// pipeDialer returns a probe.Dialer whose connections are served by a peer that
// writes reply, then hangs up; what the prober writes is discarded. wait
// blocks until every peer goroutine has ended, so goleak stays quiet.
func pipeDialer(reply []byte) (dial probe.Dialer, wait func()) {
	var wg sync.WaitGroup
	var clients peerConns
	dial = func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		clients.add(client)
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, server)
		}()
		go func() {
			defer wg.Done()
			_, _ = server.Write(reply)
			_ = server.Close()
		}()
		return client, nil
	}
	return dial, func() { clients.closeAll(); wg.Wait() }
}

// peerConns are the prober's ends of the pipes a dialer handed out. A
// net.Pipe write blocks until the other end reads, so a peer stays stuck on
// a connection the prober stopped reading without closing (the driver keeps
// one that panicked, see mysqlChecker.safeCheck); closing every prober end
// before waiting lets each peer finish instead of hanging the fuzz input.
type peerConns struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (p *peerConns) add(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *peerConns) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// flightDialer is pipeDialer for request-response protocols: reply is split
// at "||" into flights, the first sent at once and each further one after the
// next write of the prober, so a fuzzed MySQL server gets past the handshake.
func flightDialer(reply []byte) (dial probe.Dialer, wait func()) {
	var wg sync.WaitGroup
	var clients peerConns
	dial = func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		clients.add(client)
		flights := bytes.Split(reply, []byte("||"))
		wrote := make(chan struct{}, 64) // one token per write of the prober
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(wrote)
			buf := make([]byte, 4096)
			for {
				if _, err := server.Read(buf); err != nil {
					return
				}
				select {
				case wrote <- struct{}{}:
				default:
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer server.Close()
			for i, fl := range flights {
				if i > 0 {
					if _, ok := <-wrote; !ok {
						return
					}
				}
				if _, err := server.Write(fl); err != nil {
					return
				}
			}
		}()
		return client, nil
	}
	return dial, func() { clients.closeAll(); wg.Wait() }
}

// bulk frames s as a RESP bulk string.
func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// checkResult asserts what every probe outcome must satisfy.
func checkResult(t *testing.T, res probe.Result) {
	t.Helper()
	if res.OK {
		if res.Observation.Role != probe.RolePrimary && res.Observation.Role != probe.RoleReplica {
			t.Fatalf("OK probe with role %q", res.Observation.Role)
		}
		return
	}
	if res.Reason == "" {
		t.Fatalf("failed probe without a reason: %+v", res)
	}
}

// FuzzRedisReply feeds arbitrary bytes as a Redis server's replies to the
// probe's pipelined AUTH, PING and INFO: the RESP reader and the INFO parser
// must never panic, and a failure always has a reason.
func FuzzRedisReply(f *testing.F) {
	primary := "# probe.Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_repl_offset:1234\r\n" +
		"# Stats\r\ninstantaneous_ops_per_sec:42\r\nused_memory:1048576\r\n"
	replica := "role:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:up\r\n" +
		"master_last_io_seconds_ago:3\r\nslave_repl_offset:99\r\n"
	for _, s := range []string{
		"+OK\r\n+PONG\r\n" + bulk(primary),
		"+OK\r\n+PONG\r\n" + bulk(replica),
		"+OK\r\n+PONG\r\n" + bulk("role:slave\r\nmaster_link_status:down\r\n"),
		"-WRONGPASS invalid username-password pair\r\n",
		"-LOADING Redis is loading the dataset in memory\r\n",
		"+OK\r\n-NOAUTH Authentication required.\r\n",
		"+OK\r\n+PONG\r\n$-1\r\n",
		"+OK\r\n+PONG\r\n$99999999999999999999\r\n",
		"+OK\r\n+PONG\r\n$5\r\nrole:\r\n",
		"+OK\r\n+PONG\r\n$4\r\nabc\r\n",
		"+OK\r\n+PONG\r\n*1\r\n",
		"+OK\r\n+PONG\r\n" + bulk("no colon here"),
		"\r\n",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"",
	} {
		f.Add([]byte(s), true, true)
		f.Add([]byte(s), false, false)
	}
	f.Fuzz(func(t *testing.T, reply []byte, withAuth, withSample bool) {
		dial, wait := pipeDialer(reply)
		spec := probe.Spec{Engine: probe.EngineRedis, Address: "fuzz:6379"}
		if withAuth {
			spec.Username, spec.Password = "monitor", "p"
		}
		c, err := New(spec, dial)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		checkResult(t, c.Check(ctx, withSample))
		_ = c.Close()
		wait()
	})
}

// FuzzParseInfo feeds arbitrary INFO bodies to parseInfo and checks atoi
// against strconv on every value: it must never accept what does not fit.
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		"# probe.Replication\r\nrole:master\r\nconnected_slaves:2\r\nmaster_repl_offset:1234\r\n",
		"role:slave\nmaster_link_status:up\nmaster_last_io_seconds_ago:9223372036854775808\n",
		"role:slave\r\nmaster_last_io_seconds_ago:-9223372036854775808\r\n",
		"used_memory:99999999999999999999\r\nrole:master\r\n",
		":\r\n",
		"role\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, info []byte) {
		var res probe.Result
		if err := parseInfo(info, &res, true); err == nil {
			res.OK = true
			checkResult(t, res)
		}
		n, ok := atoi(info)
		want, err := strconv.ParseInt(string(info), 10, 64)
		plus := len(info) > 0 && info[0] == '+' // strconv takes a plus sign, RESP never has one
		if (ok && (err != nil || n != want)) || (!ok && err == nil && !plus) {
			t.Fatalf("atoi(%q) = %d, %v; strconv says %d, %v", info, n, ok, want, err)
		}
	})
}

// FuzzMySQLGreeting feeds arbitrary bytes as a MySQL server's first packets:
// the greeting check and the driver's handshake parsing must never panic
// or hang, and the probe must fail with a reason.
func FuzzMySQLGreeting(f *testing.F) {
	// A real MariaDB greeting (protocol 10, sequence 0), then garbage.
	greeting := "\x59\x00\x00\x00\x0a5.5.5-10.11.6-MariaDB\x00\x03\x00\x00\x00" +
		"abcdefgh\x00\xfe\xf7\x08\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00" +
		"ijklmnopqrst\x00mysql_native_password\x00"
	for _, s := range []string{
		greeting,
		greeting + "||\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00",
		greeting + "||\x02\x00\x00\x02\xff\x10",
		// OK to the login, then a one-column result set for SELECT @@read_only.
		greeting + "||\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00||" +
			"\x01\x00\x00\x01\x01" +
			"\x1e\x00\x00\x02\x03def\x00\x00\x00\x10@@global.read_only\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x80\x00\x00\x00\x00" +
			"\x05\x00\x00\x03\xfe\x00\x00\x02\x00" +
			"\x02\x00\x00\x04\x010" +
			"\x05\x00\x00\x05\xfe\x00\x00\x02\x00",
		"\x17\x00\x00\x00\xff\x10\x04Too many connections",
		"\xff\xff\xff\x00\x0a",
		"\x05\x00\x00\x01\x0a",
		"\x05\x00\x00\x00\x09",
		"\x01\x00\x00\x00\x0a",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		dial, wait := flightDialer(reply)
		c, err := New(probe.Spec{Engine: probe.EngineMySQL, Address: "fuzz:3306", Username: "u", Password: "p"}, dial)
		if err != nil {
			t.Fatal(err)
		}
		// Short: a fuzzed peer often waits for a request the driver never
		// sends while the driver waits for the rest of a packet, and only
		// this deadline ends the input. A timeout is a valid outcome (the
		// assertions below hold for it), so the bound costs no checking; at
		// 200ms such inputs made up minutes of a 3000-input run.
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Millisecond)
		defer cancel()
		res := c.Check(ctx, true)
		_ = c.Close()
		wait()
		// Whatever the bytes, a peer that hangs up after them is no server.
		if res.OK || res.Reason == "" {
			t.Fatalf("probe of garbage: %+v", res)
		}
	})
}
