package store

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultDSN is the server DSN used when Config.DSN is empty: the local
// development MariaDB.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/"

// Defaults applied by Config.withDefaults.
const (
	DefaultMaxOpenConns    = 20
	DefaultMaxIdleConns    = 10
	DefaultConnMaxLifetime = 5 * time.Minute
	DefaultConnectTimeout  = 30 * time.Second
)

// ErrInvalidConfig is returned (wrapped) by Config.Validate.
var ErrInvalidConfig = errors.New("invalid store config")

var databaseName = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// Config says which MySQL server and database a DB uses and how its pool is
// sized. The zero value of every field but Database picks a default.
type Config struct {
	// DSN is the server DSN without a database, e.g. "user:pw@tcp(host:3306)/".
	DSN string `yaml:"dsn" env:"DSN"`
	// Database is the service's database, created if missing; [a-z0-9_] only.
	Database string `yaml:"database" env:"DATABASE"`
	// MaxOpenConns caps open connections (default 20).
	MaxOpenConns int `yaml:"max_open_conns" env:"MAX_OPEN_CONNS"`
	// MaxIdleConns caps idle connections (default 10).
	MaxIdleConns int `yaml:"max_idle_conns" env:"MAX_IDLE_CONNS"`
	// ConnMaxLifetime recycles connections after this long (default 5m).
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime" env:"CONN_MAX_LIFETIME"`
	// ConnectTimeout bounds how long Open retries reaching the server (default 30s).
	ConnectTimeout time.Duration `yaml:"connect_timeout" env:"CONNECT_TIMEOUT"`
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.DSN == "" {
		c.DSN = DefaultDSN
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = DefaultMaxIdleConns
	}
	if c.ConnMaxLifetime == 0 {
		c.ConnMaxLifetime = DefaultConnMaxLifetime
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	return c
}

// Validate reports whether c (with defaults applied) can be used by Open.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !databaseName.MatchString(c.Database) {
		return fmt.Errorf("%w: database %q must be 1-64 characters of [a-z0-9_]", ErrInvalidConfig, c.Database)
	}
	mc, err := mysql.ParseDSN(c.DSN)
	if err != nil {
		return fmt.Errorf("%w: dsn: %v", ErrInvalidConfig, err)
	}
	if mc.DBName != "" {
		return fmt.Errorf("%w: dsn names database %q; set Database instead", ErrInvalidConfig, mc.DBName)
	}
	if mc.MultiStatements {
		return fmt.Errorf("%w: dsn must not enable multiStatements", ErrInvalidConfig)
	}
	if c.MaxOpenConns < 0 || c.MaxIdleConns < 0 {
		return fmt.Errorf("%w: negative pool size", ErrInvalidConfig)
	}
	if c.MaxOpenConns < 2 {
		// The relay pins one connection for its lock; leave room for queries.
		return fmt.Errorf("%w: max_open_conns %d is below 2", ErrInvalidConfig, c.MaxOpenConns)
	}
	if c.ConnMaxLifetime < 0 || c.ConnectTimeout < 0 {
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	}
	return nil
}

// mysqlConfig returns the driver config for cfg's server with the session
// settings every connection of the store uses: parseTime, UTC, interpolated
// parameters and a UTC session time zone so NOW() and DATETIME agree.
func (c Config) mysqlConfig(dbName string, multiStatements bool) (*mysql.Config, error) {
	mc, err := mysql.ParseDSN(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	mc.DBName = dbName
	mc.ParseTime = true
	mc.Loc = time.UTC
	mc.InterpolateParams = true
	mc.MultiStatements = multiStatements
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["time_zone"] = "'+00:00'"
	return mc, nil
}
