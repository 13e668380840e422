package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// Rebuild replaces a MariaDB node's data with a consistent copy of the
// source's (the instance's current primary) and starts it again read-only,
// not replicating, with its GTID state at the copy's position: a CHANGE
// MASTER ... MASTER_USE_GTID=slave_pos (ConfigureReplica, or the failover
// service's re-point) then continues exactly after the copy. It is how an
// old primary with errant transactions (writes the new primary never got)
// becomes a replica again: those transactions are gone from the node
// afterwards, so the caller reports them before.
//
// The copy is taken first (mariadb-dump --single-transaction of every
// database, with the GTID position it is consistent with), so a source that
// cannot be read leaves the node untouched. The node is then stopped, given a
// fresh data directory from the template with Canopy's accounts, started,
// loaded outside its binary log and its GTID state set. The node's lock is
// held throughout, so the supervisor does not restart it meanwhile; on a
// failure after the stop the old data directory is put back and the node
// started again as it was. A Redis node is refused with ErrUnsupported: a
// Redis replica always resynchronises fully from its primary.
func (d *Driver) Rebuild(ctx context.Context, nodeID string, source driver.Endpoint) error {
	n, err := d.lookup(nodeID)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	defer n.mu.Unlock()
	if n.spec.Engine != driver.EngineMySQL {
		return fmt.Errorf("rebuild node %s: %w: a %s replica resynchronises by itself", nodeID, driver.ErrUnsupported, n.spec.Engine)
	}
	if source.Host == "" || source.Port <= 0 {
		return fmt.Errorf("rebuild node %s: %w", nodeID, &driver.SpecError{Field: "source", Reason: "host and port required"})
	}
	if source.Port == n.spec.Port && (source.Host == loopback || source.Host == "localhost") {
		return fmt.Errorf("rebuild node %s: %w", nodeID, &driver.SpecError{Field: "source", Reason: "a node cannot be rebuilt from itself"})
	}
	log := n.logger(d.log).With("source", source.String())
	began := time.Now()
	dump := filepath.Join(n.dir, "rebuild.sql")
	defer os.Remove(dump) // it holds the tenant's data
	pos, err := d.mysql.dumpFrom(ctx, n, source, dump)
	if err != nil {
		return fmt.Errorf("rebuild node %s: copy from %s: %w", nodeID, source, err)
	}
	dumped := time.Since(began)
	if err := d.stop(ctx, n); err != nil {
		return fmt.Errorf("rebuild node %s: %w", nodeID, err)
	}
	old := n.dataDir() + ".rebuild-old-" + randomSuffix()
	if err := os.Rename(n.dataDir(), old); err != nil {
		d.restartAfterRebuild(n, "")
		return fmt.Errorf("rebuild node %s: set the old data aside: %w", nodeID, err)
	}
	if err := d.reload(ctx, n, dump, pos); err != nil {
		d.restartAfterRebuild(n, old)
		return fmt.Errorf("rebuild node %s from %s: %w", nodeID, source, err)
	}
	if err := os.RemoveAll(old); err != nil {
		log.Warn("remove the replaced data directory", "dir", old, "err", err)
	}
	n.supervised, n.restartAt, n.crashes = true, time.Time{}, 0
	log.Warn("node rebuilt from the source; its own transactions beyond the copy are gone",
		"gtid_pos", pos, "pid", n.pid, "dump_took", dumped, "took", time.Since(began))
	return nil
}

// reload gives the stopped node a fresh data directory with Canopy's
// accounts, starts it and loads the dump at GTID position pos; n.mu is held.
func (d *Driver) reload(ctx context.Context, n *node, dump, pos string) error {
	m := d.mysql
	// Never from the seed: a rebuild loads the source's dump into an empty
	// data directory (and a restore's seed is gone once the instance is made).
	if err := m.prepare(ctx, n, ""); err != nil {
		return fmt.Errorf("fresh data dir: %w", err)
	}
	if _, err := d.spawn(n, m); err != nil {
		return err
	}
	if err := d.waitReady(ctx, n, m); err != nil {
		return err
	}
	if err := m.started(n); err != nil {
		return err
	}
	if err := m.load(ctx, n, dump); err != nil {
		return err
	}
	return m.setGTID(ctx, n, pos)
}

// restartAfterRebuild puts the node back as it was before a failed
// rebuild: the server stopped, the old data directory back in place (when
// old is set) and the node started and supervised again. It runs on its own
// deadline, since the request's may be what ended the rebuild; failures are
// logged (the supervisor retries the start).
func (d *Driver) restartAfterRebuild(n *node, old string) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.StopTimeout+time.Minute)
	defer cancel()
	log := n.logger(d.log)
	if err := d.stop(ctx, n); err != nil {
		log.Error("stop a half-rebuilt node", "err", err)
	}
	if old != "" {
		if err := os.RemoveAll(n.dataDir()); err != nil {
			log.Error("remove a half-rebuilt data directory", "err", err)
		}
		if err := os.Rename(old, n.dataDir()); err != nil {
			log.Error("put the old data directory back", "dir", old, "err", err)
		}
	}
	_ = os.Remove(d.mysql.initFile(n))
	n.supervised, n.restartAt, n.crashes = true, time.Time{}, 0
	if _, err := d.spawn(n, d.mysql); err != nil {
		log.Error("restart the node after a failed rebuild; the supervisor retries", "err", err)
		return
	}
	if err := d.waitReady(ctx, n, d.mysql); err != nil {
		log.Error("node restarted after a failed rebuild does not answer", "err", err)
		return
	}
	log.Warn("rebuild failed; node restarted read-only with its old data")
}

// clientTool is a MariaDB client program (mariadb-dump, mariadb): next to
// the server binary when it is not on PATH.
func (m *mariadb) clientTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	server, err := m.bin.resolve()
	if err != nil {
		return "", err
	}
	for _, dir := range []string{filepath.Dir(server), filepath.Join(filepath.Dir(server), "..", "bin")} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor next to %s", name, server)
}

// clientDefaults writes a client option file with the admin account for
// ep, so the password never appears on a command line; callers remove it.
func (m *mariadb) clientDefaults(n *node, ep driver.Endpoint) (string, error) {
	var b strings.Builder
	// Option values are quoted; the client unescapes \\ and \" inside.
	q := func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` }
	fmt.Fprintf(&b, "[client]\nuser=%s\npassword=%s\nhost=%s\nport=%d\nprotocol=TCP\n",
		q(n.spec.Admin.Username), q(n.spec.Admin.Password), q(ep.Host), ep.Port)
	path := filepath.Join(n.dir, "client-"+randomSuffix()+".cnf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("write client options: %w", err)
	}
	return path, nil
}

// dumpGTID finds the position mariadb-dump --gtid --master-data=2 records
// at the end of the dump (commented out: the driver sets it itself after
// the load).
var dumpGTID = regexp.MustCompile(`(?m)^-- SET GLOBAL gtid_slave_pos='([0-9,\-]*)';`)

// dumpFrom writes a consistent copy of every database of source to path
// and returns the GTID position it is consistent with. The replica's own
// replication state (mysql.gtid_slave_pos) is left out: it is set from
// the returned position.
func (m *mariadb) dumpFrom(ctx context.Context, n *node, source driver.Endpoint, path string) (string, error) {
	bin, err := m.clientTool("mariadb-dump")
	if err != nil {
		return "", err
	}
	opts, err := m.clientDefaults(n, source)
	if err != nil {
		return "", err
	}
	defer os.Remove(opts)
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("open dump file: %w", err)
	}
	defer out.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--defaults-file="+opts,
		"--single-transaction", "--master-data=2", "--gtid",
		"--all-databases", "--ignore-table=mysql.gtid_slave_pos",
		"--routines", "--events", "--triggers", "--flush-privileges", "--hex-blob")
	cmd.Stdout, cmd.Stderr = out, &stderr
	cmd.Env = privateEnv()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mariadb-dump: %w: %s", err, lastBytes(stderr.String(), 1500))
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("write dump: %w", err)
	}
	return dumpPosition(path)
}

// dumpPosition reads the GTID position mariadb-dump records at the end of
// a complete dump.
func dumpPosition(path string) (string, error) {
	end := tail(path, 64<<10)
	if !strings.Contains(end, "-- Dump completed") {
		return "", errors.New("the dump is incomplete")
	}
	m := dumpGTID.FindStringSubmatch(end)
	if m == nil {
		return "", errors.New("the dump records no GTID position (is the source's binary log on?)")
	}
	return m[1], nil
}

// load runs the dump on the node as the admin account, outside the binary
// log: the copied transactions keep the source's GTIDs (set by setGTID),
// the node must not log them again under its own.
func (m *mariadb) load(ctx context.Context, n *node, dump string) error {
	bin, err := m.clientTool("mariadb")
	if err != nil {
		return err
	}
	opts, err := m.clientDefaults(n, driver.Endpoint{Host: loopback, Port: n.spec.Port})
	if err != nil {
		return err
	}
	defer os.Remove(opts)
	f, err := os.Open(dump)
	if err != nil {
		return fmt.Errorf("open dump: %w", err)
	}
	defer f.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--defaults-file="+opts, "--batch", "--binary-mode", "--max-allowed-packet=1G")
	cmd.Stdin = io.MultiReader(strings.NewReader("SET SESSION sql_log_bin=0;\n"), f)
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.Env = privateEnv()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("load the copy: %w: %s", err, lastBytes(stderr.String(), 1500))
	}
	return nil
}

// setGTID makes the node's GTID state the copy's position, as if it had
// replicated (and logged) everything up to it: gtid_slave_pos for the
// re-point to continue from, and the binary log state so that the node,
// promoted one day, continues the domains' sequences and is never taken
// for a node with errant transactions.
func (m *mariadb) setGTID(ctx context.Context, n *node, pos string) error {
	db, conn, err := adminConn(ctx, n)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	stmts := []string{"RESET MASTER"}
	if pos != "" {
		stmts = append(stmts, "SET GLOBAL gtid_binlog_state="+sqlString(pos))
	}
	stmts = append(stmts, "SET GLOBAL gtid_slave_pos="+sqlString(pos), "SET GLOBAL read_only=ON")
	if err := execAll(ctx, conn, stmts...); err != nil {
		return fmt.Errorf("set GTID position %q: %w", pos, err)
	}
	var current string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_current_pos").Scan(&current); err != nil {
		return fmt.Errorf("read GTID position: %w", err)
	}
	if current != pos {
		return fmt.Errorf("GTID position is %q after the load, want %q", current, pos)
	}
	return nil
}

func lastBytes(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
