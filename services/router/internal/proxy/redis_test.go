package proxy

import (
	"bufio"
	"bytes"
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
// when that is set. freePort's port is free only until it is closed:
// another process may bind it before redis-server does, which then exits
// while the port may still answer for the squatter. So a server counts as
// started only once the port answers INFO with its process id, and one that
// exits is started again on another port.
func redisServer(t *testing.T, primary string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	const attempts = 3
	for i := 1; ; i++ {
		a, err := startRedis(t, bin, primary)
		if err == nil {
			return a
		}
		require.Less(t, i, attempts, "redis-server: %v", err)
		t.Logf("redis-server: %v; trying another port", err)
	}
}

// startRedis starts one redis-server and waits until it answers.
func startRedis(t *testing.T, bin, primary string) (string, error) {
	port := freePort(t)
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--loglevel", "warning", "--repl-diskless-sync-delay", "0"}
	if primary != "" {
		h, p, _ := net.SplitHostPort(primary)
		args = append(args, "--replicaof", h, p)
	}
	var out bytes.Buffer // read only once Wait returned
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	a, pid := addr(port), fmt.Sprintf("process_id:%d\r\n", cmd.Process.Pid)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for {
		if info, err := redisInfo(a); err == nil && strings.Contains(info, pid) {
			return a, nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("exited before answering on port %d: %s", port, strings.TrimSpace(out.String()))
		case <-timeout:
			return "", fmt.Errorf("pid %d not answering on port %d", cmd.Process.Pid, port)
		case <-tick.C:
		}
	}
}

// redisInfo returns the INFO server section of the server at a.
func redisInfo(a string) (string, error) {
	c, err := net.DialTimeout("tcp", a, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return respErr(c, bufio.NewReader(c), "INFO server")
}

// resp sends an inline command and returns the reply, bulk strings
// unwrapped.
func resp(t *testing.T, c net.Conn, r *bufio.Reader, cmd string) string {
	t.Helper()
	s, err := respErr(c, r, cmd)
	require.NoError(t, err, "%s", cmd)
	return s
}

func respErr(c net.Conn, r *bufio.Reader, cmd string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "$") {
		return strings.TrimSpace(line), nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return "", fmt.Errorf("bulk length %q: %w", line, err)
	}
	if n < 0 {
		return "(nil)", nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
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
	ports := freePorts(t, 2)
	rwPort, roPort := ports[0], ports[1]
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
	// -LOADING until the replica's first sync is loaded.
	require.Eventually(t, func() bool { return resp(t, ro, ror, "GET k") == "v" }, 10*time.Second, 10*time.Millisecond,
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
