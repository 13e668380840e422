package alertbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// Settle is how far past group_wait an alert may arrive and still count
// as kept up with (the "delivered within group_wait + 2 s").
const Settle = 2 * time.Second

// Mode is a shape of the alert stream.
type Mode struct {
	Name   string
	Groups int // see Load.Groups
}

// Modes the issue names.
var (
	DistinctGroups = Mode{Name: "distinct groups", Groups: 0}
	HundredGroups  = Mode{Name: "100 groups", Groups: 100}
)

// StepConfig is one step of the ladder.
type StepConfig struct {
	Mode     Mode
	Rate     int
	Duration time.Duration
	Timers   Timers
	Batch    int
	Workers  int
}

// StepResult is what one step measured.
type StepResult struct {
	Target   string
	Mode     string
	Rate     int     // target alerts/s
	Achieved float64 // alerts/s actually posted
	Sent     int
	// Delivered is how many distinct alerts reached the receiver by the
	// deadline; Late of those arrived after group_wait + Settle.
	Delivered, Late int
	Repeats         int64
	PostErrors      int64
	P50, P99, Max   time.Duration
	// CPUPerAlert is the server process's CPU over the step per alert
	// sent; DepsCPUPerAlert what it needs besides (MariaDB for Canopy).
	CPUPerAlert, DepsCPUPerAlert time.Duration
	// HarnessCPUPerAlert is this process's (load, receiver, and for Canopy
	// the embedded Kafka broker), sharing the machine with the server.
	HarnessCPUPerAlert time.Duration
	Pass               bool
	Why                string
}

// RunStep starts a fresh server of t, streams cfg's load at it and waits
// for the deliveries (at most until group_wait + Settle past the last
// post).
func RunStep(ctx context.Context, t Target, rcv *Receiver, client *http.Client, cfg StepConfig, runID string, log io.Writer) (StepResult, error) {
	res := StepResult{Target: t.Name(), Mode: cfg.Mode.Name, Rate: cfg.Rate}
	srv, err := t.Start(ctx, rcv.URL(), cfg.Timers)
	if err != nil {
		return res, err
	}
	defer srv.Stop()
	n := int(float64(cfg.Rate)*cfg.Duration.Seconds()) + 1
	run := rcv.NewRun(runID, n)
	defer rcv.EndRun(runID)

	own0, deps0, err := srv.CPU()
	if err != nil {
		return res, err
	}
	self0, _ := ProcCPU(os.Getpid())
	load := Send(ctx, client, Load{
		PushURL: srv.PushURL(), Rate: cfg.Rate, Duration: cfg.Duration, Groups: cfg.Mode.Groups,
		GroupWait: cfg.Timers.GroupWait, Batch: cfg.Batch, Workers: cfg.Workers, Sign: srv.Signer(),
	}, run)
	deadline := time.Now().Add(cfg.Timers.GroupWait + Settle)
	for run.Delivered() < int64(load.Sent) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(10 * time.Millisecond): // polling the receiver's count
		}
	}
	own1, deps1, err := srv.CPU()
	if err != nil {
		return res, err
	}
	self1, _ := ProcCPU(os.Getpid())
	res.Sent, res.PostErrors, res.Repeats = load.Sent, load.PostErrors, run.repeats.Load()
	res.Achieved = float64(load.Sent) / cfg.Duration.Seconds()
	if load.Sent > 0 {
		res.CPUPerAlert = time.Duration((own1 - own0) / float64(load.Sent) * 1e9)
		res.DepsCPUPerAlert = time.Duration((deps1 - deps0) / float64(load.Sent) * 1e9)
		res.HarnessCPUPerAlert = time.Duration((self1 - self0) / float64(load.Sent) * 1e9)
	}
	res.latencies(run, load.Sent, cfg.Timers.GroupWait+Settle)
	res.judge(load)
	if !res.Pass && log != nil {
		fmt.Fprintf(log, "%s %s %d/s failed (%s); server log tail:\n%s\n", res.Target, res.Mode, res.Rate, res.Why, srv.LogTail())
	}
	return res, nil
}

// latencies fills the delivery figures from the run's times.
func (r *StepResult) latencies(run *Run, sent int, limit time.Duration) {
	lat := make([]time.Duration, 0, sent)
	for i := range sent {
		s, g := run.sent[i].Load(), run.got[i].Load()
		if s == 0 || g == 0 {
			continue
		}
		d := time.Duration(g - s)
		if d > limit {
			r.Late++
		}
		lat = append(lat, d)
	}
	r.Delivered = len(lat)
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	r.P50 = lat[len(lat)/2]
	r.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	r.Max = lat[len(lat)-1]
}

// judge decides whether the server kept up: the rate was posted (97 %),
// every post accepted, every alert delivered within group_wait + Settle.
func (r *StepResult) judge(load LoadResult) {
	var why []string
	if r.Achieved < 0.97*float64(r.Rate) {
		why = append(why, fmt.Sprintf("posted only %.0f/s", r.Achieved))
	}
	if load.PostErrors > 0 {
		why = append(why, fmt.Sprintf("%d posts failed, first: %v", load.PostErrors, load.FirstError))
	}
	if r.Delivered < r.Sent {
		why = append(why, fmt.Sprintf("%d of %d not delivered in time", r.Sent-r.Delivered, r.Sent))
	}
	if r.Late > 0 {
		why = append(why, fmt.Sprintf("%d late", r.Late))
	}
	r.Pass, r.Why = len(why) == 0, strings.Join(why, "; ")
}

// Ladder runs rising rates until one fails twice in a row, then one rate
// between the last that passed and the first that failed; it returns every step and
// the best passing one (ok false when none passed).
func Ladder(ctx context.Context, t Target, rcv *Receiver, client *http.Client, base StepConfig, rates []int, log io.Writer) ([]StepResult, StepResult, bool, error) {
	var steps []StepResult
	var best StepResult
	found := false
	try := func(rate int) (bool, error) {
		cfg := base
		cfg.Rate = rate
		id := fmt.Sprintf("%s-%d-%d-%d", t.Name(), base.Mode.Groups, rate, time.Now().UnixNano())
		r, err := RunStep(ctx, t, rcv, client, cfg, id, log)
		if err != nil {
			return false, fmt.Errorf("%s %s at %d/s: %w", t.Name(), base.Mode.Name, rate, err)
		}
		steps = append(steps, r)
		if log != nil {
			fmt.Fprintln(log, r.Line())
		}
		if r.Pass && (!found || r.Rate > best.Rate) {
			best, found = r, true
		}
		return r.Pass, nil
	}
	// confirm runs a rate again when it failed once: on a small shared
	// machine one stall (GC, the scheduler, MariaDB's flush) can fail a
	// step a server otherwise sustains. Both servers get the same rule.
	confirm := func(rate int) (bool, error) {
		ok, err := try(rate)
		if err != nil || ok {
			return ok, err
		}
		return try(rate)
	}
	for i, rate := range rates {
		ok, err := confirm(rate)
		if err != nil {
			return steps, best, found, err
		}
		if ok {
			continue
		}
		if i > 0 {
			if mid := (rates[i-1] + rate) / 2; mid > rates[i-1] && mid < rate {
				if _, err := confirm(mid); err != nil {
					return steps, best, found, err
				}
			}
		}
		break
	}
	return steps, best, found, nil
}

// Line is one row of the steps' table.
func (r StepResult) Line() string {
	verdict := "ok"
	if !r.Pass {
		verdict = "FAIL: " + r.Why
	}
	return fmt.Sprintf("%-12s %-15s %6d/s posted %7.0f/s delivered %7d/%-7d p50 %7s p99 %7s max %7s cpu/alert %7s (+deps %7s, harness %7s) repeats %d  %s",
		r.Target, r.Mode, r.Rate, r.Achieved, r.Delivered, r.Sent, ms(r.P50), ms(r.P99), ms(r.Max),
		us(r.CPUPerAlert), us(r.DepsCPUPerAlert), us(r.HarnessCPUPerAlert), r.Repeats, verdict)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/1e3) }
