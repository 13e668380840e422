package checker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
)

// defaultTimeout bounds a probe whose context carries no deadline.
const defaultTimeout = 5 * time.Second

// maxBulk caps a bulk reply (INFO is a few KiB): a peer announcing more is
// not a Redis we want to read from.
const maxBulk = 1 << 20

// Pre-encoded RESP commands.
var (
	cmdPing     = respCommand("PING")
	cmdInfoRepl = respCommand("INFO", "replication")
	cmdInfo     = respCommand("INFO")
)

// respCommand encodes args as a RESP array of bulk strings.
func respCommand(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// redisChecker is a minimal RESP2 client on one persistent connection. Each
// probe pipelines PING and INFO in one write and reads both replies; a new
// connection first pipelines AUTH (ACL form "AUTH user pass" when a monitor
// user is set). go-redis would do, but its per-target pool, background
// reaper and dial retries cost more than the whole probe at 10k targets.
type redisChecker struct {
	spec probe.Spec
	dial probe.Dialer
	auth []byte

	conn net.Conn
	r    *bufio.Reader
	wbuf []byte
	bulk []byte
}

func newRedis(spec probe.Spec, dial probe.Dialer) *redisChecker {
	c := &redisChecker{spec: spec, dial: dial}
	switch {
	case spec.Username != "":
		c.auth = respCommand("AUTH", spec.Username, spec.Password)
	case spec.Password != "":
		c.auth = respCommand("AUTH", spec.Password)
	}
	return c
}

func (c *redisChecker) Close() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.r = nil, nil
	return err
}

func (c *redisChecker) Check(ctx context.Context, withSample bool) probe.Result {
	started := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = started.Add(defaultTimeout)
	}
	reused := c.conn != nil
	res, err := c.check(ctx, deadline, withSample)
	if err != nil && reused && staleConn(err) && time.Now().Before(deadline) {
		// The kept connection died while idle (server restarted or closed
		// it): one fresh connection decides, within the same deadline.
		reused = false
		res, err = c.check(ctx, deadline, withSample)
	}
	if err != nil {
		_ = c.Close()
		r := fail(started, err)
		r.Reused = reused
		return r
	}
	res.OK, res.Started, res.Duration, res.Reused = true, started, time.Since(started), reused
	return res
}

// staleConn reports errors that a connection closed while idle produces.
func staleConn(err error) bool {
	switch classify(err) {
	case probe.ReasonClosed, probe.ReasonReset:
		return true
	}
	return false
}

func (c *redisChecker) check(ctx context.Context, deadline time.Time, withSample bool) (probe.Result, error) {
	fresh := false
	if c.conn == nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		conn, err := c.dial(dctx, "tcp", c.spec.Address)
		cancel()
		if err != nil {
			return probe.Result{}, fmt.Errorf("connect %s: %w", c.spec.Address, err)
		}
		c.conn = conn
		if c.r == nil {
			c.r = bufio.NewReaderSize(conn, 4096)
		} else {
			c.r.Reset(conn)
		}
		fresh = true
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		_ = c.Close()
		return probe.Result{}, fmt.Errorf("set deadline: %w", err)
	}
	c.wbuf = c.wbuf[:0]
	if fresh && c.auth != nil {
		c.wbuf = append(c.wbuf, c.auth...)
	}
	c.wbuf = append(c.wbuf, cmdPing...)
	if withSample {
		c.wbuf = append(c.wbuf, cmdInfo...)
	} else {
		c.wbuf = append(c.wbuf, cmdInfoRepl...)
	}
	if _, err := c.conn.Write(c.wbuf); err != nil {
		_ = c.Close()
		return probe.Result{}, fmt.Errorf("write: %w", err)
	}
	if fresh && c.auth != nil {
		if err := c.expectStatus("OK", authReason); err != nil {
			_ = c.Close()
			return probe.Result{}, fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.expectStatus("PONG", commandReason); err != nil {
		_ = c.Close()
		return probe.Result{}, fmt.Errorf("ping: %w", err)
	}
	info, err := c.readBulk()
	if err != nil {
		_ = c.Close()
		return probe.Result{}, fmt.Errorf("info: %w", err)
	}
	var res probe.Result
	if err := parseInfo(info, &res, withSample); err != nil {
		_ = c.Close()
		return probe.Result{}, err
	}
	return res, nil
}

// authReason classifies an error reply to AUTH.
func authReason(msg []byte) probe.Reason {
	if bytes.HasPrefix(msg, []byte("LOADING")) {
		return probe.ReasonLoading
	}
	return probe.ReasonAuthFailed
}

// commandReason classifies an error reply to PING or INFO.
func commandReason(msg []byte) probe.Reason {
	switch {
	case bytes.HasPrefix(msg, []byte("NOAUTH")), bytes.HasPrefix(msg, []byte("NOPERM")), bytes.HasPrefix(msg, []byte("WRONGPASS")):
		return probe.ReasonAuthFailed
	case bytes.HasPrefix(msg, []byte("LOADING")), bytes.HasPrefix(msg, []byte("BUSY")), bytes.HasPrefix(msg, []byte("MASTERDOWN")):
		return probe.ReasonLoading
	}
	return probe.ReasonServerError
}

// readLine returns one CRLF-terminated line without the CRLF; the slice is
// valid until the next read.
func (c *redisChecker) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &ProtocolError{Msg: fmt.Sprintf("line longer than %d bytes: %q", c.r.Size(), evidence(line))}
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, &ProtocolError{Msg: fmt.Sprintf("reply %q is not a RESP line", evidence(line))}
	}
	return line[:len(line)-2], nil
}

// expectStatus reads a simple-string reply that must equal want.
func (c *redisChecker) expectStatus(want string, errReason func([]byte) probe.Reason) error {
	line, err := c.readLine()
	if err != nil {
		return err
	}
	switch line[0] {
	case '+':
		if string(line[1:]) == want {
			return nil
		}
	case '-':
		return &ServerError{Reason: errReason(line[1:]), Msg: string(evidence(line[1:]))}
	}
	return &ProtocolError{Msg: fmt.Sprintf("want +%s, got %q", want, evidence(line))}
}

// readBulk reads a bulk-string reply into the checker's buffer.
func (c *redisChecker) readBulk() ([]byte, error) {
	line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	switch line[0] {
	case '$':
	case '-':
		return nil, &ServerError{Reason: commandReason(line[1:]), Msg: string(evidence(line[1:]))}
	default:
		return nil, &ProtocolError{Msg: fmt.Sprintf("want a bulk string, got %q", evidence(line))}
	}
	n, ok := atoi(line[1:])
	if !ok || n < 0 || n > maxBulk {
		return nil, &ProtocolError{Msg: fmt.Sprintf("bad bulk length %q", evidence(line))}
	}
	if cap(c.bulk) < int(n)+2 {
		c.bulk = make([]byte, int(n)+2)
	}
	buf := c.bulk[:n+2]
	if _, err := fullRead(c.r, buf); err != nil {
		return nil, err
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return nil, &ProtocolError{Msg: "bulk string not terminated by CRLF"}
	}
	return buf[:n], nil
}

func fullRead(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// evidence returns at most 64 bytes of b for error messages.
func evidence(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// atoi parses a decimal integer (optional sign) without allocating. Values
// that do not fit an int64 are refused: wrapping would turn an absurd bulk
// length into a plausible one.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg, b = true, b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // math.MinInt64 has no positive counterpart
	}
	var n uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		d := uint64(ch - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// sampleKeys maps INFO fields to sample names. The *_total names are
// counters since the server started (metering turns them into traffic and
// operations, detecting a restart by uptime_seconds going down).
var sampleKeys = map[string]string{
	"used_memory":               "used_memory",
	"maxmemory":                 "maxmemory",
	"connected_clients":         "connected_clients",
	"instantaneous_ops_per_sec": "ops_per_sec",
	"total_commands_processed":  "commands_total",
	"connected_slaves":          "connected_replicas",
	"master_repl_offset":        "repl_offset",
	"total_net_input_bytes":     "net_in_bytes_total",
	"total_net_output_bytes":    "net_out_bytes_total",
	"uptime_in_seconds":         "uptime_seconds",
	// INFO clients has maxclients since Redis 7.0; older servers leave it
	// out (CONFIG GET maxclients is often denied to a monitor user).
	"maxclients": "maxclients",
}

// sampleSize is the sample map's capacity: sampleKeys plus
// storage_used_bytes and replication_running.
const sampleSize = 13

// parseInfo reads the fields the probe needs from an INFO reply.
func parseInfo(info []byte, res *probe.Result, withSample bool) error {
	obs := &res.Observation
	var (
		role                            []byte
		linkStatus, host, port, lastIO  []byte
		slaveOffset                     []byte
		connectedSlaves, haveConnSlaves = 0, false
	)
	if withSample {
		res.Sample = make(probe.Sample, sampleSize)
	}
	for len(info) > 0 {
		var line []byte
		if i := bytes.IndexByte(info, '\n'); i >= 0 {
			line, info = info[:i], info[i+1:]
		} else {
			line, info = info, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return &ProtocolError{Msg: fmt.Sprintf("INFO line %q has no field", evidence(line))}
		}
		key, val := line[:colon], line[colon+1:]
		switch string(key) {
		case "role":
			role = val
		case "connected_slaves":
			if n, ok := atoi(val); ok {
				connectedSlaves, haveConnSlaves = int(n), true
			}
		case "master_link_status":
			linkStatus = val
		case "master_host":
			host = val
		case "master_port":
			port = val
		case "master_last_io_seconds_ago":
			lastIO = val
		case "slave_repl_offset":
			slaveOffset = val
		}
		if withSample {
			if name, ok := sampleKeys[string(key)]; ok {
				if n, ok := atoi(val); ok {
					res.Sample[name] = n
				}
			}
		}
	}
	if v, ok := res.Sample["used_memory"]; ok {
		// Redis keeps its whole data set in memory (persistence files are
		// copies of it), so the memory it uses is the storage it uses, the
		// same name MySQL's on-disk tables report under.
		res.Sample["storage_used_bytes"] = v
	}
	obs.ConnectedReplicas = -1
	if haveConnSlaves {
		obs.ConnectedReplicas = connectedSlaves
	}
	switch string(role) {
	case "master":
		obs.Role = probe.RolePrimary
	case "slave":
		obs.Role = probe.RoleReplica
		up := string(linkStatus) == "up"
		rep := &probe.Replication{Configured: true, IORunning: up, SQLRunning: up, LagSeconds: -1}
		if n, ok := atoi(lastIO); ok && up {
			rep.LagSeconds = n
		}
		if len(slaveOffset) > 0 {
			rep.Position = string(slaveOffset)
		}
		if len(host) > 0 {
			rep.Source = string(host) + ":" + string(port)
		}
		if !up {
			rep.LastError = "master_link_status:" + string(linkStatus)
		}
		obs.Replication = rep
		if withSample {
			res.Sample["replication_running"] = 0
			if up {
				res.Sample["replication_running"] = 1
			}
		}
	default:
		return &ProtocolError{Msg: fmt.Sprintf("INFO reply has no known role (role:%q)", evidence(role))}
	}
	return nil
}
