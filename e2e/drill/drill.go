package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Drill is one kill-primary drill under a steady writer.
type Drill struct {
	// Store and Locator are the writer's; Prober and Nodes the checker's.
	Store   Store
	Locator Locator
	Prober  Prober
	Nodes   []string
	// Kill kills the primary at addr (kill -9 by pid) and returns when the
	// signal is sent.
	Kill func(ctx context.Context, addr string) error
	// Interval is the writer's pace (~5 ms); RetryInterval its pause before
	// asking the locator again after a failed write; CheckInterval the
	// checker's (~5 ms).
	Interval, RetryInterval, CheckInterval time.Duration
	// WriteTimeout bounds one write.
	WriteTimeout time.Duration
	// Warmup is how many acknowledged writes come before the kill.
	Warmup int
	// AfterFailover, when set, runs once a write is acknowledged on the new
	// primary, before Settle (the peer's harness restarts the old primary
	// here).
	AfterFailover func(ctx context.Context, oldPrimary string) error
	// Settle is how long writing and checking go on after the first write
	// acknowledged on the new primary, so a late second primary is seen.
	Settle time.Duration
	// Timeout bounds the whole drill.
	Timeout time.Duration
}

// Result is what one drill measured.
type Result struct {
	// NewPrimary took the first write after the kill; FinalPrimary the
	// last one of the drill (they differ when the system failed over
	// again), and is where the acknowledged writes are read back.
	OldPrimary, NewPrimary, FinalPrimary string
	// Killed is when the kill signal was sent.
	Killed time.Time
	// LastBefore is the last write acknowledged before the kill, FirstAfter
	// the first acknowledged on the new primary.
	LastBefore, FirstAfter Ack
	// RTO is FirstAfter.At - LastBefore.At.
	RTO time.Duration
	// Acked is the number of acknowledged writes, Lost how many of them the
	// new primary does not hold after the drill (LostSeqs lists a few).
	Acked, Lost int
	LostSeqs    []int64
	// FailedWrites is the number of writes that were not acknowledged.
	FailedWrites int
	// AckedOnOld counts writes the old primary acknowledged after the kill
	// (it came back as a primary and the writer was sent there).
	AckedOnOld int
	// TwoWritable is the number of checker rounds with more than one
	// writable node, out of CheckRounds; TwoWritableFirst describes the first.
	TwoWritable, CheckRounds int
	TwoWritableFirst         string
	// Phases is the failover's own timeline, when the system under test
	// tells it (Sentinel's log events), relative to the kill.
	Phases []Phase
}

// Phase is one step of a failover, at an offset from the kill.
type Phase struct {
	Name  string
	After time.Duration
}

// String is one line per drill for the benchmark's output.
func (r Result) String() string {
	s := fmt.Sprintf("rto=%s old=%s new=%s acked=%d lost=%d failed_writes=%d two_writable=%d/%d rounds",
		ms(r.RTO), r.OldPrimary, r.NewPrimary, r.Acked, r.Lost, r.FailedWrites, r.TwoWritable, r.CheckRounds)
	if r.Lost > 0 {
		s += fmt.Sprintf(" lost_seqs=%v", r.LostSeqs)
	}
	if r.FinalPrimary != r.NewPrimary {
		s += " final=" + r.FinalPrimary
	}
	if r.AckedOnOld > 0 {
		s += fmt.Sprintf(" acked_on_old_primary_after_kill=%d", r.AckedOnOld)
	}
	if r.TwoWritableFirst != "" {
		s += " first_two_writable=" + r.TwoWritableFirst
	}
	if len(r.Phases) > 0 {
		parts := make([]string, len(r.Phases))
		for i, p := range r.Phases {
			parts[i] = p.Name + "=+" + ms(p.After)
		}
		s += " phases: " + strings.Join(parts, " ")
	}
	if !r.Killed.IsZero() && !r.FirstAfter.At.IsZero() {
		s += " first_write=+" + ms(r.FirstAfter.At.Sub(r.Killed))
	}
	return s
}

// Run runs one drill: writer and checker start, the writer gets Warmup
// acknowledgements, the primary is killed, the drill waits for a write
// acknowledged on another node, goes on for Settle, stops both and reads
// every acknowledged record back on the new primary.
func Run(ctx context.Context, d Drill) (Result, error) {
	var res Result
	if d.Kill == nil {
		return res, errors.New("drill: no kill function")
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	old, err := d.Locator.Primary(ctx)
	if err != nil {
		return res, fmt.Errorf("find the primary before the drill: %w", err)
	}
	res.OldPrimary = old
	w, err := NewWriter(d.Store, d.Locator, d.Interval, d.RetryInterval, d.WriteTimeout)
	if err != nil {
		return res, err
	}
	c, err := NewChecker(d.Prober, d.Nodes, d.CheckInterval)
	if err != nil {
		return res, err
	}
	// Both goroutines are owned here: cancelled and waited for on every
	// return path.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- w.Run(runCtx) }()
	go func() { done <- c.Run(runCtx) }()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			stop()
			<-done
			<-done
		}
	}
	defer halt()

	poll := func(what string, cond func() bool) error {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for !cond() {
			select {
			case <-ctx.Done():
				n, last := w.Errors()
				return fmt.Errorf("%s: %w (%d acknowledged writes, %d failed, last failure: %v)", what, ctx.Err(), len(w.Acks()), n, last)
			case err := <-done:
				// A goroutine ended early: put its result back for halt.
				done <- err
				return fmt.Errorf("%s: the writer or checker stopped: %w", what, err)
			case <-tick.C:
			}
		}
		return nil
	}
	if err := poll(fmt.Sprintf("%d acknowledged writes on %s before the kill", d.Warmup, old), func() bool {
		return len(w.Acks()) >= d.Warmup
	}); err != nil {
		return res, err
	}
	res.Killed = time.Now()
	if err := d.Kill(ctx, old); err != nil {
		return res, fmt.Errorf("kill the primary %s: %w", old, err)
	}
	var first Ack
	if err := poll("a write acknowledged on a new primary after killing "+old, func() bool {
		for _, a := range slices.Backward(w.Acks()) {
			if a.At.Before(res.Killed) {
				break
			}
			if a.Addr != old {
				first = a
			}
		}
		return first.Seq != 0
	}); err != nil {
		return res, err
	}
	if d.AfterFailover != nil {
		if err := d.AfterFailover(ctx, old); err != nil {
			return res, fmt.Errorf("after the failover: %w", err)
		}
	}
	if err := sleepUntil(ctx, time.Now().Add(d.Settle)); err != nil {
		return res, fmt.Errorf("settle after the failover: %w", err)
	}
	halt()

	acks := w.Acks()
	res.Acked = len(acks)
	res.FailedWrites, _ = w.Errors()
	res.FirstAfter, res.NewPrimary = first, first.Addr
	for _, a := range acks {
		if a.At.Before(res.Killed) {
			res.LastBefore = a
		} else if a.Addr == old {
			res.AckedOnOld++
		}
	}
	res.RTO = res.FirstAfter.At.Sub(res.LastBefore.At)
	res.TwoWritable, res.CheckRounds, res.TwoWritableFirst = c.TwoWritable()
	seqs := make([]int64, len(acks))
	for i, a := range acks {
		seqs[i] = a.Seq
	}
	res.FinalPrimary = acks[len(acks)-1].Addr
	missing, err := d.Store.Missing(ctx, res.FinalPrimary, seqs)
	if err != nil {
		return res, fmt.Errorf("read back the acknowledged writes on %s: %w", res.FinalPrimary, err)
	}
	res.Lost = len(missing)
	res.LostSeqs = missing[:min(len(missing), 10)]
	return res, nil
}

// Summary is the figures over several drills of one engine and system.
type Summary struct {
	RTOs        []time.Duration
	Lost        int
	TwoWritable int
}

// Add counts a drill in.
func (s *Summary) Add(r Result) {
	s.RTOs = append(s.RTOs, r.RTO)
	s.Lost += r.Lost
	s.TwoWritable += r.TwoWritable
}

// Median is the median RTO (0 without drills).
func (s Summary) Median() time.Duration { return Median(s.RTOs) }

// String lists every RTO and the median.
func (s Summary) String() string {
	parts := make([]string, len(s.RTOs))
	for i, d := range s.RTOs {
		parts[i] = ms(d)
	}
	return fmt.Sprintf("median=%s drills=[%s] lost=%d two_writable=%d", ms(s.Median()), strings.Join(parts, " "), s.Lost, s.TwoWritable)
}

// Median returns the median of ds (the mean of the middle two for an even
// count, 0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	v := slices.Clone(ds)
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// MS formats a duration in milliseconds with one decimal ("812.4").
func MS(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func ms(d time.Duration) string { return MS(d) + "ms" }
