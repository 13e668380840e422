package drill

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Prober answers whether the node at addr accepts writes right now. An
// unreachable node does not.
type Prober interface {
	Writable(ctx context.Context, addr string) bool
	Close() error
}

// probeTimeout bounds one round's probes.
const probeTimeout = 500 * time.Millisecond

// Checker polls every node of a topology each Interval, all nodes at once,
// and counts the rounds in which more than one node accepted writes: the
// moments with two writable primaries.
type Checker struct {
	probe    Prober
	addrs    []string
	interval time.Duration

	mu       sync.Mutex
	rounds   int
	moments  int
	firstTwo time.Time
	twoAddrs []string
}

// NewChecker returns a checker of the nodes at addrs.
func NewChecker(probe Prober, addrs []string, interval time.Duration) (*Checker, error) {
	if probe == nil || len(addrs) == 0 || interval <= 0 {
		return nil, errors.New("drill: a checker needs a prober, nodes and a positive interval")
	}
	return &Checker{probe: probe, addrs: append([]string(nil), addrs...), interval: interval}, nil
}

// Run polls until ctx ends and returns ctx's error.
func (c *Checker) Run(ctx context.Context) error {
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	writable := make([]bool, len(c.addrs))
	for {
		// One round: every node probed concurrently, so "at the same
		// instant" means within one round's probes (a few ms).
		// A generous bound: a live node whose answer is late must not
		// count as refusing writes, or two-writable moments go unseen.
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		var wg sync.WaitGroup
		for i, a := range c.addrs {
			wg.Go(func() { writable[i] = c.probe.Writable(pctx, a) })
		}
		wg.Wait()
		cancel()
		// A round cut by the end of ctx says nothing: a probe whose socket
		// deadline (ctx's) fired may return before ctx reports it is done.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded
		}
		var up []string
		for i, w := range writable {
			if w {
				up = append(up, c.addrs[i])
			}
		}
		c.mu.Lock()
		c.rounds++
		if len(up) > 1 {
			c.moments++
			if c.firstTwo.IsZero() {
				c.firstTwo, c.twoAddrs = time.Now(), up
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// TwoWritable returns how many rounds saw more than one writable node, out
// of how many, and a description of the first such moment ("" when none).
func (c *Checker) TwoWritable() (moments, rounds int, first string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.moments > 0 {
		first = fmt.Sprintf("%v writable at %s", c.twoAddrs, c.firstTwo.Format("15:04:05.000"))
	}
	return c.moments, c.rounds, first
}
