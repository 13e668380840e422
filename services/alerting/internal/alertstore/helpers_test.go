package alertstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/store"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
	"github.com/canopy-platform/canopy/services/alerting/migrations"
)

// t0 is the tests' fixed clock start (the store takes times as given).
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newAlertStore is newStore for tests that need the alert model
// (fingerprints, matchers).
func newAlertStore(t testing.TB) (*alertstore.Store, *store.DB) {
	t.Helper()
	requireAlertModel(t)
	return newStore(t)
}

// newStore returns a store over a fresh, migrated database.
func newStore(t testing.TB) (*alertstore.Store, *store.DB) {
	t.Helper()
	db := storetest.NewDB(t, "alertstore")
	require.NoError(t, db.Migrate(context.Background(), store.OutboxMigrations(), migrations.FS))
	s, err := alertstore.New(db)
	require.NoError(t, err)
	return s, db
}

// requireAlertModel skips when the alert package is still the contract
// stub (fingerprints and matchers panic "todo"): the store needs both.
func requireAlertModel(t testing.TB) {
	t.Helper()
	stub := func() (stub bool) {
		defer func() {
			if r := recover(); r != nil {
				if r != "todo" {
					panic(r)
				}
				stub = true
			}
		}()
		_ = alert.LabelSet{"a": "b"}.Fingerprint().String()
		m, _ := alert.NewMatcher(alert.MatchRegexp, "a", "b.*")
		_ = alert.Matchers{m}.Matches(alert.LabelSet{"a": "bc"})
		return false
	}()
	if stub {
		t.Skip("alert model not implemented on this branch (contract stub); runs once merged")
	}
}

// firing returns a firing alert with labels name=value pairs.
func firing(start time.Time, kv ...string) *alert.Alert {
	ls := alert.LabelSet{}
	for i := 0; i+1 < len(kv); i += 2 {
		ls[kv[i]] = kv[i+1]
	}
	return &alert.Alert{Labels: ls, Annotations: alert.LabelSet{"summary": "s"}, StartsAt: start, UpdatedAt: start,
		State: alert.StateFiring}
}

func matcher(t testing.TB, typ alert.MatchType, name, value string) *alert.Matcher {
	t.Helper()
	m, err := alert.NewMatcher(typ, name, value)
	require.NoError(t, err)
	return m
}

func count(t testing.TB, db *store.DB, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL().QueryRowContext(context.Background(), q, args...).Scan(&n), q)
	return n
}

func names(alerts []alertstore.StoredAlert) []string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.Labels[alert.LabelAlertName]
	}
	return out
}

// manyAlerts returns n distinct firing alerts of tenant.
func manyAlerts(n int, tenant string, start time.Time) []*alert.Alert {
	out := make([]*alert.Alert, n)
	for i := range out {
		out[i] = firing(start, alert.LabelAlertName, "Load", alert.LabelInstance, fmt.Sprintf("i-%05d", i),
			alert.LabelTenant, tenant, alert.LabelSeverity, "warning")
	}
	return out
}
