package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
	"github.com/canopy-platform/canopy/services/alerting/internal/alertstore"
)

// remediationTimeout bounds one action and the record of it.
const remediationTimeout = 2 * time.Minute

// remediate runs a firing alert's action in the background (the evaluator
// sets Action only when the rule, or the tenant's override of it, enables
// it; the runner checks the tenant's switch and the rate limit); the run is
// recorded whatever happened. Runs are bounded and Run waits for them.
func (e *Engine) remediate(ctx context.Context, fp alert.Fingerprint, a *alert.Alert, now time.Time) {
	if e.act == nil {
		return
	}
	e.remWG.Add(1)
	go func() {
		defer e.remWG.Done()
		select {
		case e.remSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-e.remSem }()
		rctx, cancel := context.WithTimeout(ctx, remediationTimeout)
		defer cancel()
		run := e.act.Execute(rctx, a, now)
		rec := alertstore.ActionRun{
			Fingerprint: fp.String(), Tenant: a.Labels[alert.LabelTenant],
			InstanceID: run.InstanceID, NodeID: run.NodeID, Action: run.Action,
			Status: run.Status, Detail: run.Detail, At: e.now(),
		}
		if rec.Action == "" {
			rec.Action = a.Action
		}
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer scancel()
		if _, err := e.st.RecordAction(sctx, rec); err != nil {
			e.log.ErrorContext(ctx, "record remediation run", slog.String("alert", rec.Fingerprint),
				slog.String("action", rec.Action), slog.String("status", rec.Status), slog.Any("err", err))
			return
		}
		e.log.InfoContext(ctx, "remediation run", slog.String("alert", rec.Fingerprint), slog.String("action", rec.Action),
			slog.String("instance", rec.InstanceID), slog.String("status", rec.Status), slog.String("detail", rec.Detail))
	}()
}
