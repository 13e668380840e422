package backupstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"

	"github.com/canopy-platform/canopy/services/backup/internal/backupstore"
	"github.com/canopy-platform/canopy/services/backup/migrations"
)

// t0 is the tests' fixed clock start (the store takes times as given).
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newStore returns a store over a fresh, migrated database.
func newStore(t testing.TB) (*backupstore.Store, *store.DB) {
	t.Helper()
	db := storetest.NewDB(t, "backupstore")
	require.NoError(t, db.Migrate(context.Background(), store.OutboxMigrations(), migrations.FS))
	s, err := backupstore.New(db)
	require.NoError(t, err)
	return s, db
}

// outboxTypes lists the event types in the outbox, in order.
func outboxTypes(t testing.TB, db *store.DB) []string {
	t.Helper()
	rows, err := db.SQL().QueryContext(context.Background(),
		"SELECT topic, JSON_VALUE(headers, '$.type') FROM outbox ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var topic, typ string
		require.NoError(t, rows.Scan(&topic, &typ))
		require.Equal(t, "canopy.backups.v1", topic)
		out = append(out, typ)
	}
	require.NoError(t, rows.Err())
	return out
}
