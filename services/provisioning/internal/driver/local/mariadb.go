package local

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/canopy-platform/canopy/libs/statedir"
	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// Small InnoDB sizes so that many nodes fit on a developer machine; plans
// override them through NodeSpec.Settings.
const (
	defaultBufferPool = "32M"
	defaultLogFile    = "8M"
)

// mysqlReserved are options the driver manages; NodeSpec.Settings may not
// set them (names normalised to underscores).
var mysqlReserved = map[string]bool{
	"user": true, "datadir": true, "tmpdir": true, "socket": true, "pid_file": true, "log_error": true,
	"port": true, "bind_address": true, "skip_networking": true, "skip_grant_tables": true,
	"skip_name_resolve": true, "init_file": true, "server_id": true, "report_host": true,
	"report_port": true, "log_bin": true, "log_bin_index": true, "relay_log": true,
	"relay_log_index": true, "log_slave_updates": true, "gtid_strict_mode": true,
	"binlog_format": true, "binlog_row_image": true, "binlog_row_metadata": true,
	"read_only": true, "skip_slave_start": true, "init_rpl_role": true,
	"rpl_semi_sync_master_enabled": true, "rpl_semi_sync_slave_enabled": true,
	"rpl_semi_sync_master_wait_point": true,
}

// mariadb runs MariaDB nodes.
type mariadb struct {
	d         *Driver
	bin       binary
	installDB binary
}

func (m *mariadb) server() *binary { return &m.bin }

func (m *mariadb) checkSettings(settings map[string]string) error {
	for k := range settings {
		if mysqlReserved[strings.ReplaceAll(strings.ToLower(k), "-", "_")] {
			return &driver.SpecError{Field: "settings", Reason: fmt.Sprintf("%q is managed by the driver", k)}
		}
	}
	return nil
}

func (m *mariadb) cnfFile(n *node) string  { return filepath.Join(n.dir, "my.cnf") }
func (m *mariadb) initFile(n *node) string { return filepath.Join(n.dir, "init.sql") }
func (m *mariadb) logFile(n *node) string  { return filepath.Join(n.dir, "error.log") }

// tmpDir keeps a node's temporary files apart from other servers' (and
// concurrent mariadb-install-db runs, which collide in a shared /tmp).
func (m *mariadb) tmpDir(n *node) string { return filepath.Join(n.dir, "tmp") }

func (m *mariadb) prepare(ctx context.Context, n *node, seed string) error {
	began := time.Now()
	if err := os.MkdirAll(m.tmpDir(n), 0o700); err != nil {
		return fmt.Errorf("make tmp dir: %w", err)
	}
	switch {
	case seed != "":
		// A restored instance: the restore job's cleanly stopped data
		// directory replaces the template. Its accounts are the source's;
		// the init file below gives Canopy's their new passwords.
		if err := checkSeed(seed, "mysql"); err != nil {
			return err
		}
		if err := copyTree(seed, n.dataDir()); err != nil {
			return fmt.Errorf("copy seed data dir %s: %w", seed, err)
		}
	case m.d.cfg.NoTemplate:
		if err := m.install(ctx, n.dataDir(), m.tmpDir(n)); err != nil {
			return err
		}
	default:
		tpl, err := m.template(ctx, n.spec.DataRoot, n.state.Version)
		if err != nil {
			return err
		}
		if err := copyTree(tpl, n.dataDir()); err != nil {
			return fmt.Errorf("copy template data dir: %w", err)
		}
	}
	n.logger(m.d.log).Debug("data dir initialised", "template", !m.d.cfg.NoTemplate, "seed", seed, "took", time.Since(began))
	// Accounts are created by the first start (--init-file), before the
	// server accepts connections, so root never needs a password and no
	// account is written to the binary log.
	return writeFileAtomic(m.initFile(n), []byte(initSQL(n.spec)), 0o600)
}

// template returns a data directory initialised once per version under
// root/templates, made with mariadb-install-db on first use.
func (m *mariadb) template(ctx context.Context, root, version string) (string, error) {
	dir := filepath.Join(root, "templates", "mariadb-"+version)
	m.d.tplMu.Lock()
	mu := m.d.tplFor[dir]
	if mu == nil {
		mu = &sync.Mutex{}
		m.d.tplFor[dir] = mu
	}
	m.d.tplMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", fmt.Errorf("make template dir: %w", err)
	}
	began := time.Now()
	tmp := dir + ".tmp-" + randomSuffix()
	scratch := tmp + "-scratch"
	defer os.RemoveAll(scratch)
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return "", fmt.Errorf("make template scratch dir: %w", err)
	}
	if err := m.install(ctx, tmp, scratch); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("make template: %w", err)
	}
	// The rename publishes a complete template; another Canopy process may
	// have published one first, which is as good.
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dir); serr != nil {
			return "", fmt.Errorf("publish template: %w", err)
		}
	}
	m.d.log.Info("mariadb template data dir made", "dir", dir, "version", version, "took", time.Since(began))
	return dir, nil
}

// install initialises dataDir with mariadb-install-db. root authenticates
// through the unix socket only, so no account is ever open without a password.
func (m *mariadb) install(ctx context.Context, dataDir, tmpDir string) error {
	bin, err := m.installDB.resolve()
	if err != nil {
		return err
	}
	args := []string{
		"--no-defaults",
		"--datadir=" + dataDir,
		"--tmpdir=" + tmpDir,
		"--auth-root-authentication-method=socket",
		"--skip-test-db",
		"--skip-name-resolve",
		"--innodb-log-file-size=" + defaultLogFile,
		"--innodb-buffer-pool-size=" + defaultBufferPool,
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = privateEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.TrimSpace(string(out))
		if len(s) > 1500 {
			s = s[len(s)-1500:]
		}
		return fmt.Errorf("mariadb-install-db: %w: %s", err, s)
	}
	// The install script makes some paths with its shell's umask.
	if _, err := statedir.Tighten(dataDir); err != nil {
		return fmt.Errorf("mariadb-install-db: %w", err)
	}
	return nil
}

// serverID derives a stable, non-zero server_id from the node's identity.
func serverID(spec driver.NodeSpec) uint32 {
	h := fnv.New32a()
	h.Write([]byte(spec.InstanceID + "/" + spec.NodeID))
	if id := h.Sum32(); id != 0 {
		return id
	}
	return 1
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// renderCnf renders my.cnf from the node's spec and current role.
func renderCnf(n *node, asRoot bool) string {
	var b strings.Builder
	w := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	fmt.Fprintf(&b, "# Written by Canopy for node %s of instance %s; every start is read-only.\n[mariadbd]\n", n.spec.NodeID, n.spec.InstanceID)
	if asRoot {
		w("user", "root")
	}
	w("datadir", n.dataDir())
	w("socket", filepath.Join(n.dir, "mysqld.sock"))
	w("pid_file", filepath.Join(n.dir, "mariadbd.pid"))
	w("log_error", filepath.Join(n.dir, "error.log"))
	w("tmpdir", filepath.Join(n.dir, "tmp"))
	w("port", strconv.Itoa(n.spec.Port))
	w("bind_address", loopback)
	w("skip_name_resolve", "ON")
	w("server_id", strconv.FormatUint(uint64(serverID(n.spec)), 10))
	w("report_host", loopback)
	w("report_port", strconv.Itoa(n.spec.Port))
	// Replication: GTID, full row images with metadata (what CDC needs),
	// replicas log what they apply so any of them can become primary.
	w("log_bin", "mysql-bin")
	w("log_bin_index", "mysql-bin.index")
	w("relay_log", "relay-bin")
	w("relay_log_index", "relay-bin.index")
	w("log_slave_updates", "ON")
	w("gtid_strict_mode", "ON")
	w("binlog_format", "ROW")
	w("binlog_row_image", "FULL")
	w("binlog_row_metadata", "FULL")
	w("sync_binlog", "1")
	w("innodb_flush_log_at_trx_commit", "1")
	w("innodb_buffer_pool_size", defaultBufferPool)
	w("innodb_log_file_size", defaultLogFile)
	w("performance_schema", "OFF")
	w("host_cache_size", "0")
	// Every start, whatever the node's role, comes up read-only as a
	// replica: a primary that crashed and restarts must not take writes
	// next to the one the failover service promoted meanwhile. The explicit
	// ConfigurePrimary (the saga's, or a failover promotion) turns writes
	// and the semi-sync master side on at runtime. With the slave side of
	// semi-sync on, init_rpl_role=SLAVE makes crash recovery truncate a
	// binlog tail that no replica acknowledged, so an old primary can
	// rejoin as a replica of the new one. A replica's configured
	// replication starts by itself.
	w("read_only", "ON")
	w("init_rpl_role", "SLAVE")
	w("rpl_semi_sync_master_wait_point", "AFTER_SYNC")
	w("rpl_semi_sync_master_enabled", "OFF")
	w("rpl_semi_sync_slave_enabled", onOff(n.state.SemiSync))
	if len(n.spec.Settings) > 0 {
		b.WriteString("# Engine settings from the plan.\n")
		keys := make([]string, 0, len(n.spec.Settings))
		for k := range n.spec.Settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w(k, n.spec.Settings[k])
		}
	}
	return b.String()
}

func (m *mariadb) writeConfig(n *node) error {
	return writeFileAtomic(m.cnfFile(n), []byte(renderCnf(n, os.Geteuid() == 0)), 0o600)
}

func (m *mariadb) args(n *node) []string {
	args := []string{"--defaults-file=" + m.cnfFile(n)}
	if _, err := os.Stat(m.initFile(n)); err == nil {
		args = append(args, "--init-file="+m.initFile(n))
	}
	return args
}

// started removes the init file once the accounts exist: it holds secrets.
func (m *mariadb) started(n *node) error {
	if err := os.Remove(m.initFile(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove init file: %w", err)
	}
	return nil
}

// sqlString quotes s as a MariaDB string literal.
func sqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
	return "'" + r.Replace(s) + "'"
}

// sqlIdent quotes s as an identifier.
func sqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// initSQL creates Canopy's accounts and the application database. It runs
// on every node, outside the binary log, so that every node carries the
// accounts (any may be promoted) and replication starts from empty GTID sets.
// Statements are idempotent: a start interrupted before the file is removed
// runs them again.
func initSQL(spec driver.NodeSpec) string {
	account := func(c driver.Credentials) string { return sqlString(c.Username) + "@'%'" }
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+";\n", args...) }
	line("SET SESSION sql_log_bin=0")
	user := func(c driver.Credentials, with string) {
		line("CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s%s", account(c), sqlString(c.Password), with)
		line("ALTER USER %s IDENTIFIED BY %s%s", account(c), sqlString(c.Password), with)
	}
	user(spec.Admin, "")
	line("GRANT ALL PRIVILEGES ON *.* TO %s WITH GRANT OPTION", account(spec.Admin))
	// Since 10.11 SUPER no longer implies these; Canopy needs them for
	// SET GLOBAL read_only and SHOW SLAVE HOSTS.
	line("GRANT READ_ONLY ADMIN, REPLICATION MASTER ADMIN ON *.* TO %s", account(spec.Admin))
	user(spec.Replication, "")
	line("GRANT REPLICATION SLAVE ON *.* TO %s", account(spec.Replication))
	// REPLICATION CLIENT (alias BINLOG MONITOR) and PROCESS for status;
	// SLAVE MONITOR because since 10.5.9 SHOW SLAVE STATUS requires it;
	// SHOW VIEW so that information_schema.tables lists the tenant's tables
	// for the storage-used sample metering bills (it reads no row).
	user(spec.Monitor, " WITH MAX_USER_CONNECTIONS 10")
	line("GRANT REPLICATION CLIENT, PROCESS, SLAVE MONITOR, SHOW VIEW ON *.* TO %s", account(spec.Monitor))
	if spec.CDC.Username != "" {
		// The cdc service's capture and sync jobs' writes (see
		// driver.CDCGrants). No connection cap: each stream holds a dump, a
		// snapshot and a lag-poll connection.
		user(spec.CDC, "")
		line("GRANT %s ON *.* TO %s", driver.CDCGrants, account(spec.CDC))
	}
	line("CREATE DATABASE IF NOT EXISTS %s", sqlIdent(spec.Database))
	return b.String()
}

// openMySQL opens a connection pool to a MariaDB node; callers close it.
func openMySQL(addr string, c driver.Credentials) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = c.Username, c.Password
	cfg.Net, cfg.Addr = "tcp", addr
	cfg.Timeout = 2 * time.Second
	cfg.ReadTimeout = 30 * time.Second
	cfg.WriteTimeout = 30 * time.Second
	cfg.InterpolateParams = true // CHANGE MASTER takes no server-side placeholders
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	return db, nil
}

func (m *mariadb) ping(ctx context.Context, n *node) error {
	db, err := openMySQL(n.record().Address, n.spec.Admin)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

// adminConn returns one admin session on the node; callers close both.
func adminConn(ctx context.Context, n *node) (*sql.DB, *sql.Conn, error) {
	db, err := openMySQL(n.record().Address, n.spec.Admin)
	if err != nil {
		return nil, nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("connect as admin: %w", err)
	}
	return db, conn, nil
}

func execAll(ctx context.Context, conn *sql.Conn, stmts ...string) error {
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// slaveStatus returns SHOW SLAVE STATUS as column → value, nil when the node
// has no replication configured.
func slaveStatus(ctx context.Context, conn *sql.Conn) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("show slave status: %w", err)
	}
	st := make(map[string]string, len(cols))
	for i, c := range cols {
		st[c] = vals[i].String
	}
	return st, rows.Err()
}

func (m *mariadb) configurePrimary(ctx context.Context, n *node, opts driver.PrimaryOpts) error {
	db, conn, err := adminConn(ctx, n)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	st, err := slaveStatus(ctx, conn)
	if err != nil {
		return err
	}
	if st != nil {
		// A promoted replica first applies what it already received, so a
		// planned promotion loses nothing the relay log holds.
		if err := execAll(ctx, conn, "STOP SLAVE IO_THREAD"); err != nil {
			return err
		}
		if st, err = slaveStatus(ctx, conn); err != nil {
			return err
		}
		if pos := st["Gtid_IO_Pos"]; pos != "" && st["Slave_SQL_Running"] == "Yes" {
			if err := waitGTID(ctx, conn, pos); err != nil {
				return err
			}
		}
		if err := execAll(ctx, conn, "STOP SLAVE", "RESET SLAVE ALL"); err != nil {
			return err
		}
	}
	return execAll(ctx, conn,
		"SET GLOBAL rpl_semi_sync_slave_enabled=OFF",
		"SET GLOBAL rpl_semi_sync_master_wait_point='AFTER_SYNC'",
		"SET GLOBAL rpl_semi_sync_master_enabled="+onOff(opts.SemiSync),
		"SET GLOBAL read_only=OFF",
	)
}

// waitGTID waits until the SQL thread applied pos, or ctx ends.
func waitGTID(ctx context.Context, conn *sql.Conn, pos string) error {
	timeout := 3600.0
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl).Seconds()
	}
	var res sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, timeout).Scan(&res); err != nil {
		return fmt.Errorf("wait for relay log to apply up to %s: %w", pos, err)
	}
	if !res.Valid || res.Int64 != 0 {
		return fmt.Errorf("relay log not applied up to %s before the deadline", pos)
	}
	return nil
}

func (m *mariadb) configureReplica(ctx context.Context, n *node, opts driver.ReplicaOpts) error {
	db, conn, err := adminConn(ctx, n)
	if err != nil {
		return err
	}
	defer db.Close()
	defer conn.Close()
	if err := execAll(ctx, conn, "SET GLOBAL read_only=ON", "SET GLOBAL rpl_semi_sync_master_enabled=OFF"); err != nil {
		return err
	}
	st, err := slaveStatus(ctx, conn)
	if err != nil {
		return err
	}
	var semi string
	if err := conn.QueryRowContext(ctx, "SELECT IF(@@rpl_semi_sync_slave_enabled, 'ON', 'OFF')").Scan(&semi); err != nil {
		return fmt.Errorf("read rpl_semi_sync_slave_enabled: %w", err)
	}
	same := st != nil &&
		st["Master_Host"] == opts.Primary.Host &&
		st["Master_Port"] == strconv.Itoa(opts.Primary.Port) &&
		st["Master_User"] == n.spec.Replication.Username &&
		st["Using_Gtid"] == "Slave_Pos" &&
		semi == onOff(opts.SemiSync)
	if !same {
		// The semi-sync slave side takes effect when the IO thread starts.
		if err := execAll(ctx, conn, "STOP SLAVE", "SET GLOBAL rpl_semi_sync_slave_enabled="+onOff(opts.SemiSync)); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx,
			"CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			opts.Primary.Host, opts.Primary.Port, n.spec.Replication.Username, n.spec.Replication.Password); err != nil {
			return fmt.Errorf("change master: %w", err)
		}
	}
	if err := execAll(ctx, conn, "START SLAVE"); err != nil {
		return err
	}
	return waitReplicating(ctx, conn)
}

// waitReplicating waits until both replication threads run. An SQL thread
// error is permanent; IO errors are retried by the server until ctx ends.
func waitReplicating(ctx context.Context, conn *sql.Conn) error {
	var last map[string]string
	err := retry.Do(ctx, pollPolicy, func(ctx context.Context) error {
		st, err := slaveStatus(ctx, conn)
		if err != nil {
			return err
		}
		last = st
		switch {
		case st == nil:
			return retry.Permanent(errors.New("replication is not configured"))
		case st["Last_SQL_Errno"] != "" && st["Last_SQL_Errno"] != "0":
			return retry.Permanent(fmt.Errorf("replication SQL error %s: %s", st["Last_SQL_Errno"], st["Last_SQL_Error"]))
		case st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes":
			return nil
		}
		return errWaiting
	})
	if err != nil && last != nil && ctx.Err() != nil {
		return fmt.Errorf("replication not running (io=%s sql=%s, last io error: %s): %w",
			last["Slave_IO_Running"], last["Slave_SQL_Running"], last["Last_IO_Error"], err)
	}
	return err
}

// copyTree copies the regular files and directories under src to dst,
// keeping their owner's permissions and dropping group and other ones (the
// copy lives in the private state dir). On Linux io.Copy between files uses copy_file_range.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()&^0o077|0o700)
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm()&^0o077)
		default:
			return fmt.Errorf("unexpected file %s (not a regular file or directory)", path)
		}
	})
}

// checkSeed refuses a seed that is not a directory (for what: the engine
// named in the error) as an invalid spec: no retry brings it back.
func checkSeed(seed, what string) error {
	if !filepath.IsAbs(seed) {
		return &driver.SpecError{Field: "seed", Reason: "must be an absolute path"}
	}
	fi, err := os.Stat(seed)
	if err != nil || !fi.IsDir() {
		return &driver.SpecError{Field: "seed", Reason: fmt.Sprintf("%s seed %s is not a directory", what, seed)}
	}
	return nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
