package drill

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
	"github.com/canopy-platform/canopy/services/backup/internal/mysqlphys"
)

// dialTimeout bounds connecting to a scratch instance's primary.
const dialTimeout = 10 * time.Second

// measure connects to the scratch instance's primary with its admin
// account and measures what the backup's verification measured: MySQL
// tables and the same sample, Redis keys.
func measure(ctx context.Context, in backup.Instance, expected backup.DataStats, sample int) (backup.DataStats, error) {
	primary, err := backup.Primary(in)
	if err != nil {
		return backup.DataStats{}, fmt.Errorf("primary of %s: %w", in.ID, err)
	}
	switch in.Engine {
	case backup.EngineMySQL:
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = in.Admin.Username, in.Admin.Password, "tcp", primary.Address
		cfg.Timeout = dialTimeout
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return backup.DataStats{}, fmt.Errorf("connect to %s: %w", primary.Address, err)
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		db.SetMaxOpenConns(2)
		st, err := mysqlphys.StatsOf(ctx, db, expected.Sample, sample)
		if err != nil {
			return backup.DataStats{}, fmt.Errorf("stats of %s: %w", primary.Address, err)
		}
		return st, nil
	case backup.EngineRedis:
		rdb := redis.NewClient(&redis.Options{Addr: primary.Address, Username: in.Admin.Username, Password: in.Admin.Password,
			DialTimeout: dialTimeout, MaxRetries: 1})
		defer rdb.Close()
		n, err := rdb.DBSize(ctx).Result()
		if err != nil {
			return backup.DataStats{}, fmt.Errorf("DBSIZE on %s: %w", primary.Address, err)
		}
		return backup.DataStats{Keys: n}, nil
	default:
		return backup.DataStats{}, fmt.Errorf("instance %s: no drill for engine %q", in.ID, in.Engine)
	}
}
