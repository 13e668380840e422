package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/canopy-platform/canopy/services/alerting/internal/alert"
)

// InstanceDown is derived, not a rule over one event: an instance is down
// when every node its topology lists has a firing NodeDown. It is what the
// default inhibit rule mutes the instance's warnings with, and what an
// on-call pager usually wants instead of one page per node.
const (
	// ruleInstanceDown is its rule id (label rule, generatorURL).
	ruleInstanceDown = "instance-down"
	alertNodeDown    = "NodeDown"
	alertInstDown    = "InstanceDown"
	// instanceDownEvery is how often the node alerts are looked at.
	instanceDownEvery = time.Second
)

// watchInstances raises and resolves InstanceDown until ctx ends. It starts
// from the InstanceDown alerts already firing (a restart), so that they
// resolve when their instance comes back.
func (e *Engine) watchInstances(ctx context.Context) {
	active := map[string]bool{}
	for _, a := range e.firing(alertInstDown) {
		active[a.Labels[alert.LabelInstance]] = true
	}
	t := time.NewTicker(instanceDownEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := e.lookInstances(ctx, active); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "instance-down alerts", slog.Any("err", err))
		}
	}
}

// lookInstances pushes InstanceDown for the instances whose nodes are all
// down and that are not yet in active, and resolves those in active that
// are not down any more.
func (e *Engine) lookInstances(ctx context.Context, active map[string]bool) error {
	now := e.now()
	downNodes := map[string]map[string]bool{} // instance → node → down
	sample := map[string]*alert.Alert{}       // instance → one of its NodeDown alerts
	for _, a := range e.firing(alertNodeDown) {
		inst := a.Labels[alert.LabelInstance]
		if downNodes[inst] == nil {
			downNodes[inst] = map[string]bool{}
		}
		downNodes[inst][a.Labels[alert.LabelNode]] = true
		sample[inst] = a
	}
	var out []*alert.Alert
	for inst, down := range downNodes {
		nodes := e.reg.InstanceNodes(inst)
		if len(nodes) == 0 || active[inst] {
			continue
		}
		all := true
		for _, n := range nodes {
			all = all && down[n]
		}
		if !all {
			continue
		}
		active[inst] = true
		out = append(out, instanceDown(sample[inst], len(nodes), e.cfg.GeneratorURL, now))
	}
	for inst := range active {
		nodes := e.reg.InstanceNodes(inst)
		stillDown := len(nodes) > 0 && downNodes[inst] != nil
		for _, n := range nodes {
			stillDown = stillDown && downNodes[inst][n]
		}
		if stillDown {
			continue
		}
		delete(active, inst)
		for _, a := range e.firing(alertInstDown) {
			if a.Labels[alert.LabelInstance] == inst {
				r := *a
				r.EndsAt, r.UpdatedAt, r.State = now, now, alert.StateResolved
				out = append(out, &r)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Labels[alert.LabelInstance] < out[j].Labels[alert.LabelInstance] })
	return e.Push(ctx, out)
}

// instanceDown is the InstanceDown alert of the instance of nodeDown.
func instanceDown(nodeDown *alert.Alert, nodes int, generatorURL string, now time.Time) *alert.Alert {
	ls := alert.LabelSet{alert.LabelAlertName: alertInstDown, alert.LabelSeverity: "critical",
		alert.LabelInstance: nodeDown.Labels[alert.LabelInstance], "rule": ruleInstanceDown}
	for _, k := range []string{alert.LabelTenant, "engine"} {
		if v := nodeDown.Labels[k]; v != "" {
			ls[k] = v
		}
	}
	inst := ls[alert.LabelInstance]
	return &alert.Alert{Labels: ls,
		Annotations: alert.LabelSet{
			"summary":     fmt.Sprintf("All %d nodes of instance %s are down", nodes, inst),
			"description": fmt.Sprintf("The health checker reaches none of the %d nodes of instance %s: clients cannot connect. Its node alerts of lower severity are inhibited meanwhile.", nodes, inst),
		},
		StartsAt: now, UpdatedAt: now, State: alert.StateFiring, Rule: ruleInstanceDown,
		GeneratorURL: generatorURL + ruleInstanceDown}
}

// firing returns the firing alerts named alertname.
func (e *Engine) firing(alertname string) []*alert.Alert {
	now := e.now()
	e.alertsMu.RLock()
	defer e.alertsMu.RUnlock()
	var out []*alert.Alert
	for _, a := range e.alerts {
		if a.Labels[alert.LabelAlertName] == alertname && a.State == alert.StateFiring && !a.Resolved(now) {
			out = append(out, a)
		}
	}
	return out
}
