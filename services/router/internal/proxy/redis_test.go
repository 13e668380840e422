package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/router/internal/table"
)

// redisServer starts a redis-server on a free port, a replica of primary
// when that is set.
func redisServer(t *testing.T, primary string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	port := freePort(t)
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--loglevel", "warning", "--repl-diskless-sync-delay", "0"}
	if primary != "" {
		h, p, _ := net.SplitHostPort(primary)
		args = append(args, "--replicaof", h, p)
	}
	cmd := exec.Command(bin, args...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitListening(t, port)
	return addr(port)
}

// resp sends an inline command and returns the reply, bulk strings
// unwrapped.
func resp(t *testing.T, c net.Conn, r *bufio.Reader, cmd string) string {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := io.WriteString(c, cmd+"\r\n")
	require.NoError(t, err)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	if !strings.HasPrefix(line, "$") {
		return strings.TrimSpace(line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	require.NoError(t, err)
	if n < 0 {
		return "(nil)"
	}
	buf := make([]byte, n+2)
	_, err = io.ReadFull(r, buf)
	require.NoError(t, err)
	return string(buf[:n])
}

// redisConn dials port and says which server answers and in which role.
func redisConn(t *testing.T, port int) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr(port))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	r := bufio.NewReader(c)
	info := resp(t, c, r, "INFO")
	var role, tcpPort string
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "role:"); ok {
			role = v
		}
		if v, ok := strings.CutPrefix(l, "tcp_port:"); ok {
			tcpPort = v
		}
	}
	return c, r, fmt.Sprintf("%s@%s", role, tcpPort)
}

// TestRedisPair forwards to a real primary and replica and follows a
// switchover.
func TestRedisPair(t *testing.T) {
	t.Parallel()
	primary := redisServer(t, "")
	replica := redisServer(t, primary)
	_, pPort, _ := net.SplitHostPort(primary)
	_, rPort, _ := net.SplitHostPort(replica)
	tbl := table.New()
	rwPort, roPort := freePort(t), freePort(t)
	tbl.Apply(table.Instance{ID: "r1", Engine: table.Redis, RWPort: rwPort, ROPort: roPort,
		Nodes: []table.Node{node("n1", primary, table.Primary), node("n2", replica, table.Replica)}})
	h := startProxy(t, Config{}, tbl)
	h.serving(rwPort)
	h.serving(roPort)

	rw, rwr, who := redisConn(t, rwPort)
	require.Equal(t, "master@"+pPort, who)
	assert.Equal(t, "+OK", resp(t, rw, rwr, "SET k v"))
	ro, ror, who := redisConn(t, roPort)
	require.Equal(t, "slave@"+rPort, who)
	require.Eventually(t, func() bool { return resp(t, ro, ror, "GET k") == "v" }, 5*time.Second, 10*time.Millisecond,
		"the write never reached the replica through the ro endpoint")

	// Switchover: n2 promoted, n1 fenced.
	c, err := net.Dial("tcp", replica)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "+OK", resp(t, c, bufio.NewReader(c), "REPLICAOF NO ONE"))
	tbl.Promoted("r1", 1, map[string]string{"n1": "fenced", "n2": "primary"})
	require.NoError(t, rw.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = rwr.ReadByte()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "timeout", "rw connection to the fenced primary stays open")
	rw2, rw2r, who := redisConn(t, rwPort)
	assert.Equal(t, "master@"+rPort, who)
	assert.Equal(t, "+OK", resp(t, rw2, rw2r, "SET k2 v2"))
}
