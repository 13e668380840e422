package local

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// redisReserved are directives the driver manages; NodeSpec.Settings may
// not set them.
var redisReserved = map[string]bool{
	"bind": true, "port": true, "dir": true, "logfile": true, "pidfile": true,
	"daemonize": true, "supervised": true, "aclfile": true, "user": true,
	"requirepass": true, "masteruser": true, "masterauth": true, "replicaof": true,
	"slaveof": true, "include": true, "rename-command": true, "unixsocket": true,
	"protected-mode": true, "maxmemory": true, "replica-read-only": true, "slave-read-only": true,
}

// redisDefaults are the directives a node gets unless its settings say
// otherwise.
var redisDefaults = map[string]string{
	// Durable by default (Stop/Start keeps data); plans may turn it off.
	"appendonly":  "yes",
	"appendfsync": "everysec",
	// "#TS:" annotations in the AOF: the backup service's archive restores
	// to the second by them (redis-check-aof --truncate-to-timestamp).
	"aof-timestamp-enabled": "yes",
	"save":                  `""`,
	// The 5 s default delay would hold back every full sync. A diskless
	// sync can leave the primary waiting for the replica's next periodic
	// ACK before it streams commands; configureReplica asks for that ACK at
	// once (see startStream). Disk-based sync ("repl-diskless-sync no" in
	// the settings) has no such wait but costs ~100 ms on every attach.
	"repl-diskless-sync":       "yes",
	"repl-diskless-sync-delay": "0",
	"maxmemory-policy":         "noeviction",
}

// unreachablePrimary is the primary a restarted Redis node follows until
// its role is assigned: port 1 on loopback (tcpmux, never a Redis server),
// so every connection attempt is refused at once.
var unreachablePrimary = driver.Endpoint{Host: loopback, Port: 1}

// redis runs Redis nodes.
type redis struct {
	bin binary
}

func (r *redis) server() *binary { return &r.bin }

func (r *redis) checkSettings(settings map[string]string) error {
	for k := range settings {
		if redisReserved[strings.ToLower(k)] {
			return &driver.SpecError{Field: "settings", Reason: fmt.Sprintf("%q is managed by the driver", k)}
		}
	}
	return nil
}

func (r *redis) confFile(n *node) string { return filepath.Join(n.dir, "redis.conf") }
func (r *redis) aclFile(n *node) string  { return filepath.Join(n.dir, "users.acl") }
func (r *redis) logFile(n *node) string  { return filepath.Join(n.dir, "redis.log") }

func (r *redis) prepare(_ context.Context, n *node, seed string) error {
	if err := os.MkdirAll(n.dataDir(), 0o700); err != nil {
		return fmt.Errorf("make data dir: %w", err)
	}
	if seed != "" {
		if err := seedRedis(n, seed); err != nil {
			return err
		}
	}
	// Written once: later ACL SAVEs (bindings) keep their users in it.
	return writeFileAtomic(r.aclFile(n), []byte(renderACL(n.spec)), 0o600)
}

// seedRedis puts the restore job's data where the node's first start
// loads it: an AOF cut to a second (seed/aof/base.rdb or base.aof, and
// incr.aof) becomes the node's multi-part AOF; a snapshot (seed/dump.rdb)
// as follows. Without AOF Redis loads the dbfilename; with
// appendonly yes (the default) it loads only the AOF and ignores any RDB, so
// the snapshot also becomes the base of a one-file AOF (Redis 7 multi-part
// AOF: appendonlydir/<appendfilename>.1.base.rdb named by the manifest),
// which Redis loads and then appends to.
func seedRedis(n *node, seed string) error {
	if err := checkSeed(seed, "redis"); err != nil {
		return err
	}
	set := func(k, def string) string {
		for key, v := range n.spec.Settings {
			if strings.EqualFold(key, k) {
				return strings.Trim(v, `"`)
			}
		}
		return def
	}
	if fi, err := os.Stat(filepath.Join(seed, "aof")); err == nil && fi.IsDir() {
		return seedRedisAOF(n, filepath.Join(seed, "aof"), set)
	}
	rdb := filepath.Join(seed, "dump.rdb")
	if fi, err := os.Stat(rdb); err != nil || !fi.Mode().IsRegular() {
		return &driver.SpecError{Field: "seed", Reason: fmt.Sprintf("redis seed %s holds no dump.rdb", seed)}
	}
	if err := copyFile(rdb, filepath.Join(n.dataDir(), set("dbfilename", "dump.rdb")), 0o600); err != nil {
		return fmt.Errorf("copy seed %s: %w", rdb, err)
	}
	if !strings.EqualFold(set("appendonly", redisDefaults["appendonly"]), "yes") {
		return nil
	}
	aofDir := filepath.Join(n.dataDir(), set("appenddirname", "appendonlydir"))
	if err := os.MkdirAll(aofDir, 0o700); err != nil {
		return fmt.Errorf("make aof dir: %w", err)
	}
	name := set("appendfilename", "appendonly.aof")
	base := name + ".1.base.rdb"
	if err := copyFile(rdb, filepath.Join(aofDir, base), 0o600); err != nil {
		return fmt.Errorf("copy seed %s as the aof base: %w", rdb, err)
	}
	manifest := fmt.Sprintf("file %s seq 1 type b\n", base)
	if err := writeFileAtomic(filepath.Join(aofDir, name+".manifest"), []byte(manifest), 0o600); err != nil {
		return fmt.Errorf("write aof manifest: %w", err)
	}
	return nil
}

// seedRedisAOF lays out an AOF seed (base.rdb or base.aof, incr.aof) as
// the node's multi-part AOF: <appendfilename>.1.base.<ext> and .1.incr.aof
// named by a manifest. Only a node keeping an AOF loads one.
func seedRedisAOF(n *node, dir string, set func(k, def string) string) error {
	if !strings.EqualFold(set("appendonly", redisDefaults["appendonly"]), "yes") {
		return &driver.SpecError{Field: "seed", Reason: "a restore to the second replays an AOF: the plan's settings turn appendonly off"}
	}
	base := "base.rdb"
	if _, err := os.Stat(filepath.Join(dir, base)); err != nil {
		base = "base.aof"
	}
	for _, f := range []string{base, "incr.aof"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || !fi.Mode().IsRegular() {
			return &driver.SpecError{Field: "seed", Reason: fmt.Sprintf("redis aof seed %s holds no %s", dir, f)}
		}
	}
	aofDir := filepath.Join(n.dataDir(), set("appenddirname", "appendonlydir"))
	if err := os.MkdirAll(aofDir, 0o700); err != nil {
		return fmt.Errorf("make aof dir: %w", err)
	}
	name := set("appendfilename", "appendonly.aof")
	baseName, incrName := name+".1."+base, name+".1.incr.aof"
	for from, to := range map[string]string{base: baseName, "incr.aof": incrName} {
		if err := copyFile(filepath.Join(dir, from), filepath.Join(aofDir, to), 0o600); err != nil {
			return fmt.Errorf("copy aof seed %s: %w", from, err)
		}
	}
	manifest := fmt.Sprintf("file %s seq 1 type b\nfile %s seq 1 type i\n", baseName, incrName)
	if err := writeFileAtomic(filepath.Join(aofDir, name+".manifest"), []byte(manifest), 0o600); err != nil {
		return fmt.Errorf("write aof manifest: %w", err)
	}
	return nil
}

// aclPassword is the ACL form of a password: its SHA-256, so the file never
// holds the secret itself.
func aclPassword(p string) string {
	sum := sha256.Sum256([]byte(p))
	return "#" + hex.EncodeToString(sum[:])
}

// renderACL renders the node's users: the default user is off; Canopy's
// admin has everything; the monitor may only PING, INFO and ROLE (AUTH and
// HELLO to log in); the replication user only what a replica sends.
func renderACL(spec driver.NodeSpec) string {
	return strings.Join([]string{
		"user default off resetpass resetkeys resetchannels -@all",
		fmt.Sprintf("user %s on %s ~* &* +@all", spec.Admin.Username, aclPassword(spec.Admin.Password)),
		fmt.Sprintf("user %s on %s resetkeys resetchannels -@all +ping +info +role +auth +hello", spec.Monitor.Username, aclPassword(spec.Monitor.Password)),
		fmt.Sprintf("user %s on %s resetkeys resetchannels -@all +psync +replconf +ping", spec.Replication.Username, aclPassword(spec.Replication.Password)),
	}, "\n") + "\n"
}

// renderRedisConf renders redis.conf from the node's spec and current role.
func renderRedisConf(n *node, aclFile, logFile string) string {
	var b strings.Builder
	w := func(k, v string) { fmt.Fprintf(&b, "%s %s\n", k, v) }
	fmt.Fprintf(&b, "# Written by Canopy for node %s of instance %s; every start is as a replica.\n", n.spec.NodeID, n.spec.InstanceID)
	w("bind", loopback)
	w("port", strconv.Itoa(n.spec.Port))
	w("protected-mode", "yes")
	w("daemonize", "no")
	w("supervised", "no")
	w("dir", n.dataDir())
	w("logfile", logFile)
	w("pidfile", filepath.Join(n.dir, "redis.pid"))
	w("aclfile", aclFile)
	w("replica-read-only", "yes")
	if n.spec.MemoryLimitBytes > 0 {
		w("maxmemory", strconv.FormatInt(n.spec.MemoryLimitBytes, 10))
	}
	// Every node knows how to reach a primary, so any can be made a replica.
	w("masteruser", n.spec.Replication.Username)
	w("masterauth", `"`+n.spec.Replication.Password+`"`)
	// Every start comes up as a replica, never as a master: a master
	// without persistence restarts empty, and its replicas would then
	// resynchronise to the empty dataset (the hazard Redis's replication
	// documentation warns about). A replica restarts following its last
	// known primary; any other node follows an address nothing answers on,
	// so it keeps its data read-only, and as a replica without a link to
	// its primary it refuses SYNC from others (NOMASTERLINK). Only
	// ConfigurePrimary (REPLICAOF NO ONE) makes a node a writable master.
	source := unreachablePrimary
	if n.state.Role == driver.RoleReplica && n.state.Source != nil {
		source = *n.state.Source
	}
	w("replicaof", source.Host+" "+strconv.Itoa(source.Port))
	merged := make(map[string]string, len(redisDefaults)+len(n.spec.Settings))
	for k, v := range redisDefaults {
		merged[k] = v
	}
	for k, v := range n.spec.Settings {
		merged[strings.ToLower(k)] = v
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w(k, merged[k])
	}
	return b.String()
}

func (r *redis) writeConfig(n *node) error {
	return writeFileAtomic(r.confFile(n), []byte(renderRedisConf(n, r.aclFile(n), r.logFile(n))), 0o600)
}

func (r *redis) args(n *node) []string { return []string{r.confFile(n)} }

func (r *redis) started(*node) error { return nil }

func adminClient(n *node) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr:        n.record().Address,
		Username:    n.spec.Admin.Username,
		Password:    n.spec.Admin.Password,
		DialTimeout: 2 * time.Second,
		MaxRetries:  -1,
		// One dial per call: the driver polls readiness itself, and
		// go-redis' default of 5 dials 100 ms apart hides a ready server.
		DialerRetries:   1,
		PoolSize:        1,
		DisableIdentity: true,
	})
}

// admin returns the node's admin client, kept between calls so that a
// call does not pay for a dial and an AUTH; n.mu is held.
func (r *redis) admin(n *node) *goredis.Client {
	if n.redisAdmin == nil {
		n.redisAdmin = adminClient(n)
	}
	return n.redisAdmin
}

// dropAdmin closes the node's kept admin client; n.mu is held. It is
// called when the server stops, when the node is forgotten and after a
// failed call, so a broken connection (or go-redis' dial back-off after
// refused dials) is never reused: the next call dials afresh.
func (n *node) dropAdmin() {
	if n.redisAdmin != nil {
		n.redisAdmin.Close()
		n.redisAdmin = nil
	}
}

// checked drops the kept admin client when err is not nil.
func checked(n *node, err error) error {
	if err != nil {
		n.dropAdmin()
	}
	return err
}

func (r *redis) ping(ctx context.Context, n *node) error {
	return checked(n, r.admin(n).Ping(ctx).Err())
}

func (r *redis) configurePrimary(ctx context.Context, n *node, _ driver.PrimaryOpts) error {
	if err := checked(n, r.admin(n).SlaveOf(ctx, "NO", "ONE").Err()); err != nil {
		return fmt.Errorf("replicaof no one: %w", err)
	}
	return nil
}

// linkPoll paces the wait for a replica's link to its primary: INFO on a
// kept connection costs well under a millisecond, and on a LAN the link is
// up a few milliseconds after REPLICAOF (diskless sync, delay 0), so the
// poll stays tight instead of backing off past the moment it came up.
var linkPoll = retry.Policy{Initial: 2 * time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 1.5}

func (r *redis) configureReplica(ctx context.Context, n *node, opts driver.ReplicaOpts) (err error) {
	defer func() { err = checked(n, err) }()
	c := r.admin(n)
	// A no-op when already replicating from that primary.
	if err := c.SlaveOf(ctx, opts.Primary.Host, strconv.Itoa(opts.Primary.Port)).Err(); err != nil {
		return fmt.Errorf("replicaof %s: %w", opts.Primary, err)
	}
	var last map[string]string
	err = retry.Do(ctx, linkPoll, func(ctx context.Context) error {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		last = parseInfo(info)
		if last["role"] == "slave" && last["master_link_status"] == "up" {
			return nil
		}
		return errWaiting
	})
	if err != nil && ctx.Err() != nil && last != nil {
		return fmt.Errorf("link to primary not up (status %q, sync in progress %q): %w", last["master_link_status"], last["master_sync_in_progress"], err)
	}
	if err != nil {
		return err
	}
	return r.startStream(ctx, n, opts.Primary)
}

// startStream makes sure the primary streams commands to the replica n
// once its link is up, instead of up to a second later.
//
// After a diskless full sync Redis (≥ 6.0, seen on 7.0) marks the replica
// online only when it reaps the RDB child (on its 100 ms cron, or on a
// REPLCONF ACK from the replica), and streams commands only from the next
// ACK after that. The replica sends one ACK the moment it has loaded the
// RDB, which often reaches the primary before the child has exited: that
// ACK is spent, and the next comes from the replica's once-a-second
// replicationCron. Until then the replica reports its link up but sees no
// write (BenchmarkOrderToReady: a ~1 s verify in about half of the Redis
// orders). So: ask the replica to ACK now (REPLCONF GETACK, which also makes
// the primary look for the exited child) until the primary lists it as
// online; the ACK that follows that sighting starts the stream. When the
// stream already runs, the extra ACK only reports the replica's offset.
func (r *redis) startStream(ctx context.Context, n *node, primary driver.Endpoint) error {
	p := goredis.NewClient(&goredis.Options{
		Addr:     primary.String(),
		Username: n.spec.Monitor.Username, Password: n.spec.Monitor.Password,
		DialTimeout: 2 * time.Second, MaxRetries: -1, DialerRetries: 1, PoolSize: 1, DisableIdentity: true,
	})
	defer p.Close()
	ack, err := dialAckRequester(ctx, n.record().Address, n.spec.Admin)
	if err != nil {
		return fmt.Errorf("ask replica to acknowledge: %w", err)
	}
	defer ack.close()
	state := ""
	err = retry.Do(ctx, linkPoll, func(ctx context.Context) error {
		info, err := p.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		state = replicaState(parseInfo(info), loopback, n.spec.Port)
		// Asked after the state was read: when it read online, this ACK
		// reaches the primary after it marked the replica online.
		if err := ack.request(ctx); err != nil {
			return retry.Permanent(err)
		}
		if state != "online" {
			return errWaiting
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("primary %s does not list the replica online (state %q): %w", primary, state, err)
	}
	if err != nil {
		return fmt.Errorf("start the replication stream: %w", err)
	}
	return nil
}

// replicaState is the state ("wait_bgsave", "send_bulk", "online") a
// primary's INFO replication gives the replica at ip:port, or "" when it
// does not list it.
func replicaState(info map[string]string, ip string, port int) string {
	for k, v := range info {
		if !strings.HasPrefix(k, "slave") {
			continue
		}
		fields := map[string]string{}
		for _, f := range strings.Split(v, ",") {
			if fk, fv, ok := strings.Cut(f, "="); ok {
				fields[fk] = fv
			}
		}
		if fields["ip"] == ip && fields["port"] == strconv.Itoa(port) {
			return fields["state"]
		}
	}
	return ""
}

// ackRequester is a raw connection to a replica on which to send REPLCONF
// GETACK: the replica acts on it from any client but never replies, which a
// client library waiting for every reply cannot express. Each request is
// followed by a PING, whose reply shows the replica has read it.
type ackRequester struct {
	conn net.Conn
	r    *bufio.Reader
}

// ackTimeout bounds one request when ctx has no earlier deadline.
const ackTimeout = 2 * time.Second

func dialAckRequester(ctx context.Context, addr string, cred driver.Credentials) (*ackRequester, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	a := &ackRequester{conn: conn, r: bufio.NewReader(conn)}
	if err := a.roundTrip(ctx, "+OK", []string{"AUTH", cred.Username, cred.Password}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	return a, nil
}

// request asks the replica to send its primary a REPLCONF ACK now.
func (a *ackRequester) request(ctx context.Context) error {
	return a.roundTrip(ctx, "+PONG", []string{"REPLCONF", "GETACK", "*"}, []string{"PING"})
}

// roundTrip writes the commands and reads one reply line, which must be
// want: only the last command replies.
func (a *ackRequester) roundTrip(ctx context.Context, want string, cmds ...[]string) error {
	deadline := time.Now().Add(ackTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := a.conn.SetDeadline(deadline); err != nil {
		return err
	}
	var b strings.Builder
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, arg := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(arg), arg)
		}
	}
	if _, err := io.WriteString(a.conn, b.String()); err != nil {
		return err
	}
	line, err := a.r.ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimRight(line, "\r\n"); line != want {
		return fmt.Errorf("replica replied %q, want %q", line, want)
	}
	return nil
}

func (a *ackRequester) close() { a.conn.Close() }

// parseInfo parses the "key:value" lines of a Redis INFO reply.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}
