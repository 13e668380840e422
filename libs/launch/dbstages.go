package launch

import (
	"context"
	"io/fs"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canopy-platform/canopy/libs/store"
)

// DatabaseStages returns the two stages a service with a database starts
// with: "database" opens cfg's database into *db and closes it at stop (a
// failed close is logged, there is nothing left to do about it), and
// "migrate" applies store.OutboxMigrations() then sets, in one ordered,
// locked run. Add what must follow the migration (build a repository, seed)
// to migrate with Then.
func DatabaseStages(cfg store.Config, logger *slog.Logger, db **store.DB, sets ...fs.FS) (database, migrate Stage) {
	database = Stage{
		Name: "database",
		Start: func(ctx context.Context) (err error) {
			*db, err = store.Open(ctx, cfg, logger)
			return err
		},
		Stop: func(context.Context) error {
			if err := (*db).Close(); err != nil {
				logger.Warn("close database", "err", err)
			}
			return nil
		},
	}
	return database, MigrateStage(db, sets...)
}

// MigrateStage is the "migrate" stage alone, for a service given an open
// database: it applies store.OutboxMigrations() then sets to *db.
func MigrateStage(db **store.DB, sets ...fs.FS) Stage {
	all := append([]fs.FS{store.OutboxMigrations()}, sets...)
	return Stage{Name: "migrate", Start: func(ctx context.Context) error { return (*db).Migrate(ctx, all...) }}
}

// RelayStage is the "outbox relay" stage: it relays *db's outbox to pub
// until stopped. Put it before the stages that write, so that it stops after
// them and the events of their last changes go out.
func RelayStage(db **store.DB, pub store.Publisher, cfg store.RelayConfig, logger *slog.Logger, reg prometheus.Registerer) Stage {
	return Stage{Name: "outbox relay", Run: func(ctx context.Context) error {
		return store.NewRelay(*db, pub, cfg, logger, reg).Run(ctx)
	}}
}

// Then returns st with then run after st's own Start, in the same stage: its
// error is the stage's.
func Then(st Stage, then func(ctx context.Context) error) Stage {
	start := st.Start
	st.Start = func(ctx context.Context) error {
		if start != nil {
			if err := start(ctx); err != nil {
				return err
			}
		}
		return then(ctx)
	}
	return st
}
