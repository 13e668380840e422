package mysqlrepo_test

import (
	"context"
	"testing"

	"github.com/canopy-platform/canopy/libs/idempotency"
	"github.com/canopy-platform/canopy/libs/idempotency/idempotencytest"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/gateway/internal/mysqlrepo"
	"github.com/canopy-platform/canopy/services/gateway/migrations"
)

// TestIdempotencyStore runs the idempotency.Store conformance suite against
// the gateway's idempotency_keys table in MariaDB.
func TestIdempotencyStore(t *testing.T) {
	db := storetest.NewDB(t, "gateway_idem")
	if err := db.Migrate(context.Background(), migrations.FS); err != nil {
		t.Fatal(err)
	}
	repo, err := mysqlrepo.New(db)
	if err != nil {
		t.Fatal(err)
	}
	idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
		if _, err := db.SQL().ExecContext(context.Background(), "DELETE FROM idempotency_keys"); err != nil {
			t.Fatal(err)
		}
		return repo
	})
}
