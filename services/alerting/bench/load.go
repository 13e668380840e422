package alertbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Load is one step's alert stream.
type Load struct {
	// PushURL is the server's POST /api/v2/alerts.
	PushURL string
	// Rate is the target alerts per second, for Duration.
	Rate     int
	Duration time.Duration
	// Groups is 0 for a group per alert; n puts the alerts of each window
	// of half the group_wait in n groups (fresh group labels per window, so
	// every group flushes after group_wait with all of its alerts, and no
	// alert waits for a group_interval tick).
	Groups    int
	GroupWait time.Duration
	// Batch is alerts per POST (Prometheus sends up to 64); Workers posts
	// in flight.
	Batch, Workers int
	// Sign, when set, signs each push (Canopy's identity headers).
	Sign func(req *http.Request, body []byte)
}

// LoadResult is what the stream achieved.
type LoadResult struct {
	Sent       int
	Elapsed    time.Duration // first POST to last POST answered
	PostErrors int64
	FirstError error
}

// batch is alerts [from, to) of a run, due at.
type batch struct{ from, to int }

// Send posts the load's alerts, recording each batch's POST start in run.
// It paces by the clock: when the server answers too slowly the workers
// fall behind and fewer alerts are sent than the rate asks for.
func Send(ctx context.Context, client *http.Client, l Load, run *Run) LoadResult {
	total := min(int(float64(l.Rate)*l.Duration.Seconds()), len(run.sent))
	queue := make(chan batch, l.Workers)
	var res LoadResult
	var errs atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range l.Workers {
		wg.Go(func() {
			var buf bytes.Buffer
			for b := range queue {
				if err := l.post(ctx, client, &buf, run, b, start); err != nil {
					errs.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	sent := l.pace(ctx, queue, total, start)
	close(queue)
	wg.Wait()
	res.Sent, res.Elapsed, res.PostErrors, res.FirstError = sent, time.Since(start), errs.Load(), firstErr
	return res
}

// pace hands out batches as the clock makes alerts due, until Duration
// has passed or total are out; it returns how many were handed out.
func (l Load) pace(ctx context.Context, queue chan<- batch, total int, start time.Time) int {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for sent < total {
		select {
		case <-ctx.Done():
			return sent
		case <-tick.C:
		}
		elapsed := time.Since(start)
		if elapsed > l.Duration {
			return sent
		}
		due := min(int(float64(l.Rate)*elapsed.Seconds()), total)
		for sent < due {
			n := min(l.Batch, due-sent)
			select {
			case queue <- batch{sent, sent + n}:
				sent += n
			case <-ctx.Done():
				return sent
			}
		}
	}
	return sent
}

// post sends one batch.
func (l Load) post(ctx context.Context, client *http.Client, buf *bytes.Buffer, run *Run, b batch, start time.Time) error {
	now := time.Now()
	buf.Reset()
	l.body(buf, run.ID, b, now, start)
	body := buf.Bytes()
	for i := b.from; i < b.to; i++ {
		run.sent[i].Store(now.UnixNano())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.PushURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if l.Sign != nil {
		l.Sign(req, body)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("push: %s: %s", resp.Status, msg)
	}
	return nil
}

// body writes the alerts of b as Prometheus pushes them: a JSON array of
// {labels, annotations, startsAt, generatorURL}.
func (l Load) body(buf *bytes.Buffer, runID string, b batch, now, start time.Time) {
	ts := now.UTC().Format(time.RFC3339Nano)
	window := ""
	if l.Groups > 0 {
		window = "w" + strconv.FormatInt(int64(now.Sub(start)/max(l.GroupWait/2, time.Millisecond)), 10) + "-"
	}
	buf.WriteByte('[')
	for i := b.from; i < b.to; i++ {
		if i > b.from {
			buf.WriteByte(',')
		}
		group := "a" + strconv.Itoa(i)
		if l.Groups > 0 {
			group = window + "g" + strconv.Itoa(i%l.Groups)
		}
		fmt.Fprintf(buf, `{"labels":{"alertname":%q,%q:%q,%q:%q,%q:"%d","severity":"warning"},`+
			`"annotations":{"summary":"bench alert %d"},"startsAt":%q,"generatorURL":"http://127.0.0.1:9090/graph"}`,
			AlertName, LabelGroup, group, LabelRun, runID, LabelAlertID, i, i, ts)
	}
	buf.WriteByte(']')
}
