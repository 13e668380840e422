// Package engineadmin talks to a running instance's engines with Canopy's
// admin account: it verifies replication (write on the primary, read on
// every replica), creates and drops binding users (MySQL users with grants
// on the application database, Redis ACL users) and applies parameter
// changes at runtime. It does not start, stop or configure nodes; the
// driver does that.
package engineadmin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	goredis "github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/libs/nettune"
	"github.com/canopy-platform/canopy/libs/retry"

	"github.com/canopy-platform/canopy/services/provisioning/internal/driver"
	"github.com/canopy-platform/canopy/services/provisioning/internal/instance"
	"github.com/canopy-platform/canopy/services/provisioning/internal/tunables"
)

// Client reaches instances' nodes with Canopy's admin account.
type Client struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// New returns a client dialing with the given tuned dialer settings.
func New(d nettune.DialerSettings) *Client {
	return &Client{dial: d.DialContext}
}

// Database is the application database of a MySQL instance: its name with
// '-' turned into '_'.
func Database(in *instance.Instance) string { return in.Database() }

var identPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

func (c *Client) mysql(addr string, cr instance.Credentials, db string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = cr.Username, cr.Password, "tcp", addr, db
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 30*time.Second, 30*time.Second
	cfg.DialFunc = c.dial
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	d := sql.OpenDB(conn)
	d.SetMaxOpenConns(1)
	return d, nil
}

func (c *Client) redis(addr string, cr instance.Credentials) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr: addr, Username: cr.Username, Password: cr.Password,
		Dialer: c.dial, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		MaxRetries: -1, PoolSize: 1, DisableIdentity: true,
	})
}

// poll paces the waits for a replica to show a write. A replica applies a
// write a few milliseconds after the primary commits it, so the first
// re-read comes soon: starting at 50 ms put ~40 ms into most verifies
// (BenchmarkOrderToReady).
var poll = retry.Policy{Initial: 5 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 1.5}

// Verify writes a token on the primary and waits until every replica
// returns it, or ctx ends.
func (c *Client) Verify(ctx context.Context, in *instance.Instance, token string) error {
	p, ok := in.Primary()
	if !ok {
		return errors.New("verify: no primary")
	}
	adm := in.Accounts.Admin
	switch in.Plan.Engine {
	case instance.EngineMySQL:
		db, err := c.mysql(p.Address, adm, "")
		if err != nil {
			return err
		}
		defer db.Close()
		if err := writable(ctx, db, p.ID); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		for _, q := range []string{
			"CREATE DATABASE IF NOT EXISTS canopy_meta",
			"CREATE TABLE IF NOT EXISTS canopy_meta.verify (id INT PRIMARY KEY, token VARCHAR(64) NOT NULL)",
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("verify on primary %s: %w", p.ID, err)
			}
		}
		if _, err := db.ExecContext(ctx, "REPLACE INTO canopy_meta.verify (id, token) VALUES (1, ?)", token); err != nil {
			return fmt.Errorf("verify write on primary %s: %w", p.ID, err)
		}
		for _, r := range in.Replicas() {
			rdb, err := c.mysql(r.Address, adm, "")
			if err != nil {
				return err
			}
			err = retry.Do(ctx, poll, func(ctx context.Context) error {
				var got string
				err := rdb.QueryRowContext(ctx, "SELECT token FROM canopy_meta.verify WHERE id = 1").Scan(&got)
				if err != nil {
					return err
				}
				if got != token {
					return fmt.Errorf("replica has token %q", got)
				}
				return nil
			})
			rdb.Close()
			if err != nil {
				return fmt.Errorf("verify read on replica %s: %w", r.ID, err)
			}
		}
		return nil
	case instance.EngineRedis:
		cl := c.redis(p.Address, adm)
		defer cl.Close()
		const key = "canopy:verify"
		if err := cl.Set(ctx, key, token, 0).Err(); err != nil {
			return fmt.Errorf("verify write on primary %s: %w", p.ID, err)
		}
		// Every replica is read at once: each waits for the same write.
		reps := in.Replicas()
		errs := make([]error, len(reps))
		var wg sync.WaitGroup
		for i, r := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rc := c.redis(r.Address, adm)
				defer rc.Close()
				err := retry.Do(ctx, poll, func(ctx context.Context) error {
					got, err := rc.Get(ctx, key).Result()
					if err != nil {
						return err
					}
					if got != token {
						return fmt.Errorf("replica has token %q", got)
					}
					return nil
				})
				if err != nil {
					errs[i] = fmt.Errorf("verify read on replica %s: %w", r.ID, err)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		// The key was only a probe; the tenant's keyspace starts empty.
		if err := cl.Del(ctx, key).Err(); err != nil {
			return fmt.Errorf("verify cleanup on primary %s: %w", p.ID, err)
		}
		return nil
	}
	return fmt.Errorf("verify: unknown engine %q", in.Plan.Engine)
}

// ServerVersion asks the primary which build it runs (MySQL SELECT
// VERSION(), Redis INFO server's redis_version) and returns it as the
// engine's own label: "mariadb-10.11.19", "mysql-8.4.3", "redis-7.0.15".
func (c *Client) ServerVersion(ctx context.Context, in *instance.Instance) (string, error) {
	p, ok := in.Primary()
	if !ok {
		return "", errors.New("server version: no primary")
	}
	adm := in.Accounts.Admin
	switch in.Plan.Engine {
	case instance.EngineMySQL:
		db, err := c.mysql(p.Address, adm, "")
		if err != nil {
			return "", err
		}
		defer db.Close()
		var v string
		if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
			return "", fmt.Errorf("server version of %s: %w", p.ID, err)
		}
		return MySQLLabel(v)
	case instance.EngineRedis:
		cl := c.redis(p.Address, adm)
		defer cl.Close()
		info, err := cl.Info(ctx, "server").Result()
		if err != nil {
			return "", fmt.Errorf("server version of %s: %w", p.ID, err)
		}
		return RedisLabel(info)
	}
	return "", fmt.Errorf("server version: unknown engine %q", in.Plan.Engine)
}

var (
	mysqlVersion = regexp.MustCompile(`^(\d+\.\d+\.\d+)`)
	redisVersion = regexp.MustCompile(`(?m)^redis_version:(\d+\.\d+\.\d+)\r?$`)
)

// MySQLLabel turns SELECT VERSION()'s answer ("10.11.19-MariaDB-0+deb12u1-log",
// "8.4.3") into the engine's label ("mariadb-10.11.19", "mysql-8.4.3").
func MySQLLabel(v string) (string, error) {
	m := mysqlVersion.FindStringSubmatch(v)
	if m == nil {
		return "", fmt.Errorf("no version in VERSION() %q", v)
	}
	if strings.Contains(strings.ToLower(v), "mariadb") {
		return "mariadb-" + m[1], nil
	}
	return "mysql-" + m[1], nil
}

// RedisLabel finds redis_version in INFO server's answer: "redis-7.0.15".
func RedisLabel(info string) (string, error) {
	m := redisVersion.FindStringSubmatch(info)
	if m == nil {
		return "", errors.New("no redis_version in INFO server")
	}
	return "redis-" + m[1], nil
}

// CreateUser creates (or resets) an application user: on MySQL on the
// primary (it replicates) with all privileges on the application database
// only; on Redis an ACL user on every node (ACLs do not replicate) with
// data commands but no administrative or dangerous ones.
func (c *Client) CreateUser(ctx context.Context, in *instance.Instance, u instance.Credentials) error {
	if !identPattern.MatchString(u.Username) || !identPattern.MatchString(u.Password) {
		return errors.New("create user: username and password must be letters, digits or '_'")
	}
	switch in.Plan.Engine {
	case instance.EngineMySQL:
		p, ok := in.Primary()
		if !ok {
			return errors.New("create user: no primary")
		}
		dbName := Database(in)
		if !identPattern.MatchString(dbName) {
			return fmt.Errorf("create user: bad database name %q", dbName)
		}
		db, err := c.mysql(p.Address, in.Accounts.Admin, "")
		if err != nil {
			return err
		}
		defer db.Close()
		if err := writable(ctx, db, p.ID); err != nil {
			return fmt.Errorf("create mysql user %s: %w", u.Username, err)
		}
		for _, q := range []string{
			fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", u.Username, u.Password),
			fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s'", u.Username, u.Password),
			fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", dbName, u.Username),
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("create mysql user %s: %w", u.Username, err)
			}
		}
		return nil
	case instance.EngineRedis:
		return c.eachRedis(ctx, in, func(ctx context.Context, cl *goredis.Client) error {
			if err := cl.Do(ctx, "ACL", "SETUSER", u.Username, "reset", "on", ">"+u.Password, "~*", "&*", "+@all", "-@admin", "-@dangerous").Err(); err != nil {
				return fmt.Errorf("acl setuser %s: %w", u.Username, err)
			}
			return cl.Do(ctx, "ACL", "SAVE").Err()
		})
	}
	return fmt.Errorf("create user: unknown engine %q", in.Plan.Engine)
}

// CreateCDCUser creates (or resets) the cdc account on a MySQL instance
// whose nodes were bootstrapped without it: on the primary, in the binary
// log, so that every replica gets it, with driver.CDCGrants.
func (c *Client) CreateCDCUser(ctx context.Context, in *instance.Instance, u instance.Credentials) error {
	if in.Plan.Engine != instance.EngineMySQL {
		return fmt.Errorf("create cdc user: engine %q has no cdc account", in.Plan.Engine)
	}
	if !identPattern.MatchString(u.Username) || !identPattern.MatchString(u.Password) {
		return errors.New("create cdc user: username and password must be letters, digits or '_'")
	}
	p, ok := in.Primary()
	if !ok {
		return errors.New("create cdc user: no primary")
	}
	db, err := c.mysql(p.Address, in.Accounts.Admin, "")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := writable(ctx, db, p.ID); err != nil {
		return fmt.Errorf("create cdc user %s: %w", u.Username, err)
	}
	for _, q := range []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", u.Username, u.Password),
		fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s'", u.Username, u.Password),
		fmt.Sprintf("GRANT %s ON *.* TO '%s'@'%%'", driver.CDCGrants, u.Username),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create cdc user %s: %w", u.Username, err)
		}
	}
	return nil
}

// DropUser removes an application user and disconnects its sessions.
func (c *Client) DropUser(ctx context.Context, in *instance.Instance, username string) error {
	if !identPattern.MatchString(username) {
		return errors.New("drop user: bad username")
	}
	switch in.Plan.Engine {
	case instance.EngineMySQL:
		p, ok := in.Primary()
		if !ok {
			return errors.New("drop user: no primary")
		}
		db, err := c.mysql(p.Address, in.Accounts.Admin, "")
		if err != nil {
			return err
		}
		defer db.Close()
		if err := writable(ctx, db, p.ID); err != nil {
			return fmt.Errorf("drop mysql user %s: %w", username, err)
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", username)); err != nil {
			return fmt.Errorf("drop mysql user %s: %w", username, err)
		}
		// DROP USER leaves open sessions alive; end them on every node.
		for _, n := range in.Nodes {
			if err := c.killSessions(ctx, n.Address, in.Accounts.Admin, username); err != nil {
				return err
			}
		}
		return nil
	case instance.EngineRedis:
		return c.eachRedis(ctx, in, func(ctx context.Context, cl *goredis.Client) error {
			if err := cl.Do(ctx, "ACL", "DELUSER", username).Err(); err != nil {
				return fmt.Errorf("acl deluser %s: %w", username, err)
			}
			return cl.Do(ctx, "ACL", "SAVE").Err()
		})
	}
	return fmt.Errorf("drop user: unknown engine %q", in.Plan.Engine)
}

// ErrNotPrimary: the node the instance records as its primary refuses
// writes (read_only): a failover is moving the primary, or the node
// restarted and awaits its role. Callers retry on the instance as stored
// next time.
var ErrNotPrimary = errors.New("recorded primary is read-only")

// writable refuses to write through Canopy's admin account on a read-only
// MySQL node: the account may bypass read_only, and a write on a fenced
// former primary would be an errant transaction the new primary lacks.
func writable(ctx context.Context, db *sql.DB, nodeID string) error {
	var readOnly bool
	if err := db.QueryRowContext(ctx, "SELECT @@read_only").Scan(&readOnly); err != nil {
		return fmt.Errorf("read @@read_only of %s: %w", nodeID, err)
	}
	if readOnly {
		return fmt.Errorf("node %s: %w", nodeID, ErrNotPrimary)
	}
	return nil
}

func (c *Client) killSessions(ctx context.Context, addr string, adm instance.Credentials, username string) error {
	db, err := c.mysql(addr, adm, "")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE user = ?", username)
	if err != nil {
		return fmt.Errorf("list sessions of %s on %s: %w", username, addr, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err == nil {
			ids = append(ids, id)
		}
	}
	rows.Close()
	for _, id := range ids {
		// A session may end by itself meanwhile (1094 unknown thread).
		_, _ = db.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10))
	}
	return nil
}

func (c *Client) eachRedis(ctx context.Context, in *instance.Instance, fn func(ctx context.Context, cl *goredis.Client) error) error {
	for _, n := range in.Nodes {
		cl := c.redis(n.Address, in.Accounts.Admin)
		err := fn(ctx, cl)
		cl.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", n.ID, err)
		}
	}
	return nil
}

// Apply sets engine settings at runtime on every node (MySQL SET GLOBAL,
// Redis CONFIG SET). Only the engine's tunables may be set: the check is
// repeated here because this is the last step before the engine.
func (c *Client) Apply(ctx context.Context, in *instance.Instance, settings map[string]string) error {
	for k := range settings {
		if !tunables.Allowed(in.Plan.Engine, k) {
			return fmt.Errorf("apply: setting %q: %w", k, tunables.ErrNotAllowed)
		}
	}
	switch in.Plan.Engine {
	case instance.EngineMySQL:
		for _, n := range in.Nodes {
			db, err := c.mysql(n.Address, in.Accounts.Admin, "")
			if err != nil {
				return err
			}
			for k, v := range settings {
				// Values travel as placeholders; numeric strings stay numbers.
				var arg any = v
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					arg = f
					if i, err := strconv.ParseInt(v, 10, 64); err == nil {
						arg = i
					}
				}
				if _, err := db.ExecContext(ctx, "SET GLOBAL "+strings.ReplaceAll(k, "-", "_")+" = ?", arg); err != nil {
					db.Close()
					return fmt.Errorf("node %s: set %s: %w", n.ID, k, err)
				}
			}
			db.Close()
		}
		return nil
	case instance.EngineRedis:
		return c.eachRedis(ctx, in, func(ctx context.Context, cl *goredis.Client) error {
			for k, v := range settings {
				if err := cl.ConfigSet(ctx, k, v).Err(); err != nil {
					return fmt.Errorf("config set %s: %w", k, err)
				}
			}
			return nil
		})
	}
	return fmt.Errorf("apply: unknown engine %q", in.Plan.Engine)
}
