package mysqlrepo_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/gateway/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/gateway/internal/session"
	"github.com/canopy-platform/canopy/services/gateway/migrations"
)

// TestSessions stores, reads, deletes and sweeps sessions in MariaDB.
func TestSessions(t *testing.T) {
	ctx := context.Background()
	db := storetest.NewDB(t, "gateway_sessions")
	require.NoError(t, db.Migrate(ctx, migrations.FS))
	repo, err := mysqlrepo.New(db)
	require.NoError(t, err)

	now := time.Now().UTC()
	live, liveID, err := session.New("01aaaaaaaaaaaaaaaaaaaaaaaa", now, time.Hour)
	require.NoError(t, err)
	old, oldID, err := session.New("bootstrap", now.Add(-2*time.Hour), time.Hour)
	require.NoError(t, err)
	require.NoError(t, repo.CreateSession(ctx, live))
	require.NoError(t, repo.CreateSession(ctx, old))

	got, err := repo.SessionByHash(ctx, session.Hash(liveID))
	require.NoError(t, err)
	require.Equal(t, live.KeyID, got.KeyID)
	require.Equal(t, live.CSRFToken, got.CSRFToken)
	require.True(t, live.ExpiresAt.Equal(got.ExpiresAt), "%v != %v", live.ExpiresAt, got.ExpiresAt)

	_, err = repo.SessionByHash(ctx, session.Hash("nope"))
	require.ErrorIs(t, err, session.ErrNotFound)

	// The sweep removes only the expired one, and is idempotent.
	n, err := repo.DeleteExpiredSessions(ctx, now)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, err = repo.DeleteExpiredSessions(ctx, now)
	require.NoError(t, err)
	require.EqualValues(t, 0, n)
	_, err = repo.SessionByHash(ctx, session.Hash(oldID))
	require.ErrorIs(t, err, session.ErrNotFound)

	require.NoError(t, repo.DeleteSession(ctx, session.Hash(liveID)))
	require.NoError(t, repo.DeleteSession(ctx, session.Hash(liveID)), "deleting twice is no error")
	_, err = repo.SessionByHash(ctx, session.Hash(liveID))
	require.ErrorIs(t, err, session.ErrNotFound)
}
