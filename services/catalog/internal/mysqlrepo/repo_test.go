package mysqlrepo

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/api/events"
	"github.com/canopy-platform/canopy/libs/store/storetest"
	"github.com/canopy-platform/canopy/services/catalog/internal/brokercred"
	"github.com/canopy-platform/canopy/services/catalog/internal/plan"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newRepo(t *testing.T) *Repo {
	t.Helper()
	db := storetest.NewDB(t, "catalog_repo")
	r, err := New(db, func() time.Time { return t0 })
	require.NoError(t, err)
	require.NoError(t, r.Migrate(context.Background()))
	return r
}

type outboxRow struct {
	Topic, Key, Type string
	Data             events.PlanEvent
}

func outbox(t *testing.T, r *Repo) []outboxRow {
	t.Helper()
	rows, err := r.db.SQL().QueryContext(context.Background(),
		"SELECT topic, msg_key, JSON_UNQUOTE(JSON_EXTRACT(headers, '$.type')), payload FROM outbox ORDER BY id")
	require.NoError(t, err)
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var o outboxRow
		var payload []byte
		require.NoError(t, rows.Scan(&o.Topic, &o.Key, &o.Type, &payload))
		require.NoError(t, json.Unmarshal(payload, &o.Data))
		out = append(out, o)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestSeedIdempotent(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	seed, err := plan.Seed(t0)
	require.NoError(t, err)

	n, skipped, err := r.Seed(ctx, seed)
	require.NoError(t, err)
	require.Equal(t, 6, n)
	require.Empty(t, skipped)
	first, err := r.ListPlans(ctx, PlanQuery{Limit: 100})
	require.NoError(t, err)

	again, err := plan.Seed(t0.Add(time.Hour))
	require.NoError(t, err)
	n, skipped, err = r.Seed(ctx, again)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, skipped)
	second, err := r.ListPlans(ctx, PlanQuery{Limit: 100})
	require.NoError(t, err)
	require.Equal(t, first, second)
	require.Len(t, outbox(t, r), 6, "a second seed emits nothing")
}

func TestCreateUpdateDeprecateEmitEvents(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	seed, err := plan.Seed(t0)
	require.NoError(t, err)
	p := seed[0]
	require.NoError(t, r.CreatePlan(ctx, p, nil))

	dup := seed[1]
	dup.Name = p.Name
	require.ErrorIs(t, r.CreatePlan(ctx, dup, nil), ErrNameTaken)
	require.ErrorIs(t, r.CreatePlan(ctx, p, nil), ErrExists)

	desc := "changed"
	got, err := r.UpdatePlan(ctx, p.ID, func(cur plan.Plan) (plan.Plan, Change, error) {
		next, fields, err := cur.Apply(plan.Changes{Description: &desc}, t0.Add(time.Minute))
		return next, Change{Event: events.TypePlanUpdated, Fields: fields}, err
	})
	require.NoError(t, err)
	require.Equal(t, desc, got.Description)

	_, err = r.UpdatePlan(ctx, p.ID, func(cur plan.Plan) (plan.Plan, Change, error) {
		cur.Deprecate(t0.Add(2 * time.Minute))
		return cur, Change{Event: events.TypePlanDeprecated}, nil
	})
	require.NoError(t, err)
	stored, err := r.GetPlan(ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, plan.Deprecated, stored.State)

	_, err = r.GetPlan(ctx, "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, ErrNotFound)

	rows := outbox(t, r)
	require.Len(t, rows, 3)
	for i, typ := range []string{events.TypePlanCreated, events.TypePlanUpdated, events.TypePlanDeprecated} {
		require.Equal(t, events.TopicCatalog, rows[i].Topic)
		require.Equal(t, p.ID, rows[i].Key)
		require.Equal(t, typ, rows[i].Type)
		require.Equal(t, p.ID, rows[i].Data.Plan.ID)
	}
	require.Equal(t, []string{"description"}, rows[1].Data.ChangedFields)
}

func TestIdempotentResponseIsAtomicWithCreate(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	seed, err := plan.Seed(t0)
	require.NoError(t, err)
	idem := &IdempotentResponse{Scope: "s", Key: "k", RequestHash: "h", Status: 201, Body: []byte(`{}`)}
	require.NoError(t, r.CreatePlan(ctx, seed[0], idem))
	require.ErrorIs(t, r.CreatePlan(ctx, seed[1], idem), ErrIdempotencyKeyUsed)
	_, err = r.GetPlan(ctx, seed[1].ID)
	require.ErrorIs(t, err, ErrNotFound, "nothing half written")
	got, ok, err := r.LookupIdempotent(ctx, "s", "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 201, got.Status)
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	var ids []string
	for i, name := range []string{"cf-prod", "k8s-dev", "cf-dev"} {
		c, pw, err := brokercred.Issue(name, "", "apikey:admin", t0.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
		require.NoError(t, r.CreateCredential(ctx, c, nil))
		got, err := r.CredentialByUsername(ctx, c.Username)
		require.NoError(t, err)
		require.NoError(t, got.Check(pw))
		ids = append(ids, c.ID)
	}
	page, err := r.ListCredentials(ctx, nil, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	rest, err := r.ListCredentials(ctx, &CredentialCursor{CreatedAt: page[1].CreatedAt, ID: page[1].ID}, 2)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	require.Equal(t, ids[2], rest[0].ID)

	require.NoError(t, r.RevokeCredential(ctx, ids[0], t0))
	require.NoError(t, r.RevokeCredential(ctx, ids[0], t0.Add(time.Hour)))
	c, err := r.GetCredential(ctx, ids[0])
	require.NoError(t, err)
	require.False(t, c.Active())
	require.Equal(t, t0, *c.RevokedAt)
	require.ErrorIs(t, r.RevokeCredential(ctx, "00000000-0000-4000-8000-000000000000", t0), ErrNotFound)
}
