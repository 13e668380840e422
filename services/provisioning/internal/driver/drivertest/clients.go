package drivertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
)

// engineClient is what the suite does to an engine through its real client.
type engineClient interface {
	// write stores val under key on node (a primary).
	write(ctx context.Context, n driver.Node, s driver.NodeSpec, key, val string) error
	// read returns the value under key on node, "" when absent.
	read(ctx context.Context, n driver.Node, s driver.NodeSpec, key string) (string, error)
	checkReadOnly(ctx context.Context, in *instance) error
	checkMonitor(ctx context.Context, n driver.Node, s driver.NodeSpec) error
	checkNoAnonymous(ctx context.Context, n driver.Node) error
	// checkRefusesWrites checks that node refuses client writes (MySQL
	// read_only on, Redis a replica answering READONLY).
	checkRefusesWrites(ctx context.Context, n driver.Node, s driver.NodeSpec) error
}

// RefusesWrites checks that a node refuses client writes the way a user
// would see it: MySQL @@read_only is 1; Redis ROLE says slave and a write
// fails with READONLY.
func RefusesWrites(ctx context.Context, n driver.Node, s driver.NodeSpec) error {
	if s.Engine == driver.EngineMySQL {
		return mysqlClient{}.checkRefusesWrites(ctx, n, s)
	}
	return redisClient{}.checkRefusesWrites(ctx, n, s)
}

// MySQL error numbers the suite expects.
const (
	erDBAccessDenied         = 1044
	erAccessDenied           = 1045
	erTableAccessDenied      = 1142
	erNoSuchTable            = 1146
	erSpecificAccessDenied   = 1227
	erOptionPreventsStmt     = 1290 // --read-only
	erCommandDeniedToUserCol = 1143
)

// OpenMySQL opens a pool to a MySQL node as c, on database db ("" for none).
func OpenMySQL(addr string, c driver.Credentials, db string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = c.Username, c.Password
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", addr, db
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 20*time.Second, 20*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		panic(err) // only a malformed config fails here
	}
	return sql.OpenDB(conn)
}

func mysqlErrno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

type mysqlClient struct{}

func (mysqlClient) write(ctx context.Context, n driver.Node, s driver.NodeSpec, key, val string) error {
	db := OpenMySQL(n.Address, s.Admin, s.Database)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS kv (k VARCHAR(64) PRIMARY KEY, v VARCHAR(128) NOT NULL)"); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, "REPLACE INTO kv (k, v) VALUES (?, ?)", key, val)
	return err
}

func (mysqlClient) read(ctx context.Context, n driver.Node, s driver.NodeSpec, key string) (string, error) {
	db := OpenMySQL(n.Address, s.Admin, s.Database)
	defer db.Close()
	var v string
	err := db.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) || mysqlErrno(err) == erNoSuchTable {
		return "", nil
	}
	return v, err
}

func (mysqlClient) checkRefusesWrites(ctx context.Context, n driver.Node, s driver.NodeSpec) error {
	db := OpenMySQL(n.Address, s.Admin, "")
	defer db.Close()
	var readOnly bool
	if err := db.QueryRowContext(ctx, "SELECT @@read_only").Scan(&readOnly); err != nil {
		return fmt.Errorf("read @@read_only of %s: %w", n.ID, err)
	}
	if !readOnly {
		return fmt.Errorf("node %s: read_only is OFF", n.ID)
	}
	return nil
}

// checkReadOnly creates an application user on the primary (it replicates)
// and checks that it may write there but not on a replica.
func (mysqlClient) checkReadOnly(ctx context.Context, in *instance) error {
	p := in.specs[0]
	app := driver.Credentials{Username: "app-rw", Password: Secret()}
	admin := OpenMySQL(in.nodes[0].Address, p.Admin, "")
	defer admin.Close()
	for _, stmt := range []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", app.Username, app.Password),
		fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s'", app.Username, app.Password),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", p.Database, app.Username),
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("primary: %s: %w", strings.SplitN(stmt, " IDENTIFIED", 2)[0], err)
		}
	}
	insert := "INSERT INTO kv (k, v) VALUES (?, 'app') ON DUPLICATE KEY UPDATE v = 'app'"
	db := OpenMySQL(in.nodes[0].Address, app, p.Database)
	_, err := db.ExecContext(ctx, insert, "app-primary")
	db.Close()
	if err != nil {
		return fmt.Errorf("app user write on primary: %w", err)
	}
	for i := 1; i < len(in.nodes); i++ {
		n := in.nodes[i]
		var readOnly bool
		adm := OpenMySQL(n.Address, in.specs[i].Admin, "")
		err := adm.QueryRowContext(ctx, "SELECT @@read_only").Scan(&readOnly)
		adm.Close()
		if err != nil {
			return fmt.Errorf("replica %s: read @@read_only: %w", n.ID, err)
		}
		if !readOnly {
			return fmt.Errorf("replica %s: read_only is OFF", n.ID)
		}
		err = eventually(ctx, "app user write on replica "+n.ID, func(ctx context.Context) error {
			db := OpenMySQL(n.Address, app, p.Database)
			defer db.Close()
			_, err := db.ExecContext(ctx, insert, "app-replica")
			switch {
			case err == nil:
				return retry.Permanent(errors.New("app user wrote on a replica"))
			case mysqlErrno(err) == erOptionPreventsStmt:
				return nil
			default: // the user has not replicated yet (1045) or similar
				return err
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (mysqlClient) checkMonitor(ctx context.Context, n driver.Node, s driver.NodeSpec) error {
	db := OpenMySQL(n.Address, s.Monitor, "")
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("monitor ping: %w", err)
	}
	for _, q := range []string{"SHOW GLOBAL STATUS LIKE 'Uptime'", "SHOW SLAVE STATUS", "SHOW PROCESSLIST", "SHOW BINLOG STATUS"} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("monitor %s: %w", q, err)
		}
		rows.Close()
	}
	for _, stmt := range []string{
		"INSERT INTO `" + s.Database + "`.kv (k, v) VALUES ('monitor', 'x')",
		"CREATE DATABASE monitor_was_here",
		"SET GLOBAL read_only = OFF",
	} {
		_, err := db.ExecContext(ctx, stmt)
		switch errno := mysqlErrno(err); {
		case errno == erDBAccessDenied, errno == erTableAccessDenied, errno == erSpecificAccessDenied, errno == erCommandDeniedToUserCol:
		case errno == erOptionPreventsStmt && n.Role == driver.RoleReplica:
			// read_only is checked before privileges; the primary proves them.
		default:
			return fmt.Errorf("monitor %q: err = %v, want access denied", stmt, err)
		}
	}
	return nil
}

func (mysqlClient) checkNoAnonymous(ctx context.Context, n driver.Node) error {
	for _, c := range []driver.Credentials{{Username: "root"}, {Username: ""}, {Username: "root", Password: "root"}} {
		db := OpenMySQL(n.Address, c, "")
		err := db.PingContext(ctx)
		db.Close()
		if err == nil {
			return fmt.Errorf("%q with password %q logs in over TCP", c.Username, c.Password)
		}
		if mysqlErrno(err) != erAccessDenied {
			return fmt.Errorf("%q over TCP: err = %v, want access denied", c.Username, err)
		}
	}
	return nil
}

// checkSemiSync checks the master side is on the primary only, the slave
// side on the replicas only, and that commits are acknowledged.
func checkSemiSync(ctx context.Context, in *instance) error {
	vars := func(db *sql.DB, query string) (map[string]string, error) {
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		m := map[string]string{}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				return nil, err
			}
			m[strings.ToLower(k)] = v
		}
		return m, rows.Err()
	}
	primary := OpenMySQL(in.nodes[0].Address, in.specs[0].Admin, "")
	defer primary.Close()
	v, err := vars(primary, "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'")
	if err != nil {
		return err
	}
	if v["rpl_semi_sync_master_enabled"] != "ON" || v["rpl_semi_sync_master_wait_point"] != "AFTER_SYNC" || v["rpl_semi_sync_slave_enabled"] != "OFF" {
		return fmt.Errorf("primary semi-sync variables: %v", v)
	}
	replicas := len(in.nodes) - 1
	var before map[string]string
	err = eventually(ctx, "semi-sync replicas connected", func(context.Context) error {
		s, err := vars(primary, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master%'")
		if err != nil {
			return err
		}
		before = s
		if s["rpl_semi_sync_master_status"] != "ON" || s["rpl_semi_sync_master_clients"] != strconv.Itoa(replicas) {
			return fmt.Errorf("primary semi-sync status %s with %s clients", s["rpl_semi_sync_master_status"], s["rpl_semi_sync_master_clients"])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := (mysqlClient{}).write(ctx, in.nodes[0], in.specs[0], "semi-sync", Secret()); err != nil {
		return err
	}
	after, err := vars(primary, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master%'")
	if err != nil {
		return err
	}
	if after["rpl_semi_sync_master_yes_tx"] == before["rpl_semi_sync_master_yes_tx"] || after["rpl_semi_sync_master_no_tx"] != before["rpl_semi_sync_master_no_tx"] {
		return fmt.Errorf("commit not acknowledged by a replica: yes_tx %s→%s, no_tx %s→%s",
			before["rpl_semi_sync_master_yes_tx"], after["rpl_semi_sync_master_yes_tx"], before["rpl_semi_sync_master_no_tx"], after["rpl_semi_sync_master_no_tx"])
	}
	for i := 1; i < len(in.nodes); i++ {
		db := OpenMySQL(in.nodes[i].Address, in.specs[i].Admin, "")
		v, err := vars(db, "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'")
		if err != nil {
			db.Close()
			return err
		}
		s, err := vars(db, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'")
		db.Close()
		if err != nil {
			return err
		}
		if v["rpl_semi_sync_slave_enabled"] != "ON" || v["rpl_semi_sync_master_enabled"] != "OFF" || s["rpl_semi_sync_slave_status"] != "ON" {
			return fmt.Errorf("replica %s semi-sync: variables %v, status %v", in.nodes[i].ID, v, s)
		}
	}
	return nil
}

// RedisClient returns a go-redis client for a node as c.
func RedisClient(addr string, c driver.Credentials) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: addr, Username: c.Username, Password: c.Password,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1,
	})
}

type redisClient struct{}

func (redisClient) checkRefusesWrites(ctx context.Context, n driver.Node, s driver.NodeSpec) error {
	c := RedisClient(n.Address, s.Admin)
	defer c.Close()
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return fmt.Errorf("role of %s: %w", n.ID, err)
	}
	if len(role) == 0 || role[0] != "slave" {
		return fmt.Errorf("node %s: ROLE %v, want slave", n.ID, role)
	}
	if err := c.Set(ctx, "refuses-writes", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		return fmt.Errorf("write on %s: err = %v, want READONLY", n.ID, err)
	}
	return nil
}

func (redisClient) write(ctx context.Context, n driver.Node, s driver.NodeSpec, key, val string) error {
	c := RedisClient(n.Address, s.Admin)
	defer c.Close()
	return c.Set(ctx, key, val, 0).Err()
}

func (redisClient) read(ctx context.Context, n driver.Node, s driver.NodeSpec, key string) (string, error) {
	c := RedisClient(n.Address, s.Admin)
	defer c.Close()
	v, err := c.Get(ctx, key).Result()
	if errors.Is(err, goredis.Nil) {
		return "", nil
	}
	return v, err
}

func (redisClient) checkReadOnly(ctx context.Context, in *instance) error {
	for i := 1; i < len(in.nodes); i++ {
		c := RedisClient(in.nodes[i].Address, in.specs[i].Admin)
		err := c.Set(ctx, "replica-write", "x", 0).Err()
		c.Close()
		if err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
			return fmt.Errorf("write on replica %s: err = %v, want READONLY", in.nodes[i].ID, err)
		}
	}
	return nil
}

func (redisClient) checkMonitor(ctx context.Context, n driver.Node, s driver.NodeSpec) error {
	c := RedisClient(n.Address, s.Monitor)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("monitor ping: %w", err)
	}
	if err := c.Info(ctx, "replication").Err(); err != nil {
		return fmt.Errorf("monitor info: %w", err)
	}
	if err := c.Do(ctx, "ROLE").Err(); err != nil {
		return fmt.Errorf("monitor role: %w", err)
	}
	for _, cmd := range [][]any{{"SET", "monitor", "x"}, {"GET", "replicates"}, {"CONFIG", "GET", "maxmemory"}, {"KEYS", "*"}, {"ACL", "LIST"}} {
		err := c.Do(ctx, cmd...).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			return fmt.Errorf("monitor %v: err = %v, want NOPERM", cmd, err)
		}
	}
	return nil
}

func (redisClient) checkNoAnonymous(ctx context.Context, n driver.Node) error {
	c := goredis.NewClient(&goredis.Options{Addr: n.Address, DialTimeout: 2 * time.Second, MaxRetries: -1})
	defer c.Close()
	err := c.Ping(ctx).Err()
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		return fmt.Errorf("unauthenticated ping: err = %v, want NOAUTH", err)
	}
	return nil
}
