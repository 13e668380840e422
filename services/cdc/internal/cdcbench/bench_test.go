package cdcbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/canopy-platform/canopy/services/cdc/internal/gtidpos"
	"github.com/canopy-platform/canopy/services/cdc/internal/sink"
)

// Goals of issue 13.
const (
	throughputGoal = 0.3 // canopy rows/s ÷ raw go-mysql parse rows/s
	lagGoal        = time.Second
)

// BenchmarkCDCThroughput loads CANOPY_BENCH_CDC_ROWS (default 200k) orders
// in transactions of 1000 rows, then, per iteration, reads that binlog range
// three times: a bare go-mysql BinlogSyncer parse (the peer), capture.Run
// into sink.Write until a checkpoint reaches the end of the load (the bare
// data path), and the service's pipeline runner with its stream and
// checkpoints in MySQL until the stored checkpoint reaches it (rows from
// binlog to acknowledged Kafka events, as the service runs them). The goal,
// ≥ 0.3 × the raw parse, is judged on the service's path.
func BenchmarkCDCThroughput(b *testing.B) {
	rows := int64(envInt(b, "CANOPY_BENCH_CDC_ROWS", 200_000))
	n := startNode(b)
	broker := startKafka(b)
	ctx := b.Context()

	before, err := n.position(ctx)
	if err != nil {
		b.Fatal(err)
	}
	loadStart := time.Now()
	if err := n.load(ctx, 1, rows, 1000, 250); err != nil {
		b.Fatal(err)
	}
	after, err := n.position(ctx)
	if err != nil {
		b.Fatal(err)
	}
	target, err := gtidpos.Parse(after)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d rows in %s; binlog range %s → %s", rows, time.Since(loadStart).Round(time.Millisecond), before, after)

	var rawRows, capRows, batches int64
	var rawTime, capTime, writeTime, svcTime time.Duration
	iter := uint32(0)
	for b.Loop() {
		iter++
		r, d, err := rawParse(ctx, n.source(), rawServerID+iter, before, after)
		if err != nil {
			b.Fatalf("raw go-mysql parse: %v", err)
		}
		if r != rows {
			b.Fatalf("raw go-mysql parse saw %d row changes, the load wrote %d", r, rows)
		}
		rawRows, rawTime = rawRows+r, rawTime+d

		prefix := fmt.Sprintf("cdc.bench.t%d", iter)
		snk := sink.New([]string{broker}, sink.Options{})
		var stopErr error
		start := time.Now()
		st, err := pump(ctx, captureConfig(n, captureServerID+iter, prefix, before), snk, untilPosition(target, &stopErr))
		d = time.Since(start)
		if cerr := snk.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = stopErr
		}
		if err != nil {
			b.Logf("cdc throughput: raw go-mysql parse %.0f rows/s; canopy leg failed", rate(rawRows, rawTime))
			b.Fatalf("canopy leg (capture.Run → sink.Write): %v", err)
		}
		if st.rows < rows {
			b.Fatalf("canopy leg acknowledged %d row changes up to %s, the load wrote %d", st.rows, after, rows)
		}
		capRows, capTime = capRows+rows, capTime+d
		svcTime += serviceLeg(b, n, broker, before, target, iter)
		batches, writeTime = batches+st.batches, writeTime+st.write
		if err := deleteTopics(ctx, broker, topicOf(prefix)); err != nil {
			b.Fatal(err)
		}
	}

	raw, canopy, svc := rate(rawRows, rawTime), rate(capRows, capTime), rate(capRows, svcTime)
	ratio := svc / raw
	b.ReportMetric(svc, "service-rows/s")
	b.ReportMetric(canopy, "datapath-rows/s")
	b.ReportMetric(raw, "raw-rows/s")
	b.ReportMetric(ratio, "ratio")
	verdict := "meets"
	if ratio < throughputGoal {
		verdict = "MISSES"
	}
	// The goal is judged on the service's own path (pipeline runner with its
	// stream and checkpoints in MySQL); the bare data path (one capture
	// batch per Kafka write, nothing stored) is shown next to it.
	b.Logf("cdc throughput: service %.0f rows/s, raw go-mysql parse %.0f rows/s, ratio %.2f (goal ≥ %.2f: %s) over %d rows × %d runs; bare data path (capture.Run → sink.Write, batch by batch) %.0f rows/s, ratio %.2f",
		svc, raw, ratio, throughputGoal, verdict, rows, iter, canopy, canopy/raw)
	// Where the canopy leg's time went: waiting on Kafka acknowledgements
	// (sink.Write) or on the capture.
	b.Logf("cdc throughput: sink.Write took %s of the canopy leg's %s (%.0f%%), %d batches (%.0f rows each)",
		writeTime.Round(time.Millisecond), capTime.Round(time.Millisecond), 100*writeTime.Seconds()/capTime.Seconds(),
		batches, float64(capRows)/float64(max(batches, 1)))
}

func rate(rows int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(rows) / d.Seconds()
}

// BenchmarkCDCLag writes CANOPY_BENCH_CDC_RATE (default 2000) rows/s for
// CANOPY_BENCH_CDC_SECONDS (default 20) in small autocommit INSERTs paced by a
// ticker while capture.Run and sink.Write stream them to Kafka and a
// kafka-go Reader consumes the topic. A row's lag is the time its event is
// read from Kafka minus the time the client got its commit acknowledged.
// It reports p50/p99/max; the goal is p99 < 1 s.
func BenchmarkCDCLag(b *testing.B) {
	secs := envInt(b, "CANOPY_BENCH_CDC_SECONDS", 20)
	perSec := envInt(b, "CANOPY_BENCH_CDC_RATE", 2000)
	n := startNode(b)
	broker := startKafka(b)
	ctx := b.Context()

	var lags []time.Duration
	var sent, received int64
	var writeTime time.Duration
	iter := 0
	for b.Loop() {
		iter++
		res, err := lagRun(ctx, n, broker, iter, perSec, secs)
		if err != nil {
			b.Fatal(err)
		}
		lags = append(lags, res.lags...)
		sent, received, writeTime = sent+res.sent, received+res.received, writeTime+res.writeTime
		if res.early > 0 {
			b.Logf("run %d: %d rows were read from Kafka before their commit acknowledgement reached the client (lag counted as 0)", iter, res.early)
		}
	}

	slices.Sort(lags)
	p50, p99, worst := percentile(lags, 0.50), percentile(lags, 0.99), percentile(lags, 1)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(worst), "max-ms")
	b.ReportMetric(float64(received), "rows")
	b.ReportMetric(rate(sent, writeTime), "written-rows/s")
	verdict := "meets"
	if p99 >= lagGoal {
		verdict = "MISSES"
	}
	b.Logf("cdc lag: p50 %s, p99 %s, max %s (goal p99 < %s: %s); %d/%d rows received, written at %.0f rows/s (target %d) for %s",
		p50.Round(time.Millisecond/10), p99.Round(time.Millisecond/10), worst.Round(time.Millisecond/10), lagGoal, verdict,
		received, sent, rate(sent, writeTime), perSec, writeTime.Round(time.Millisecond))
	if received < sent {
		b.Errorf("%d of %d rows never reached Kafka", sent-received, sent)
	}
}

// percentile returns the q-quantile (nearest rank) of sorted ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

type lagResult struct {
	lags           []time.Duration
	sent, received int64
	writeTime      time.Duration
	// early counts rows read before the client saw their commit: the
	// binlog is sent to readers before the OK packet reaches the client.
	early int64
}

// lagRun is one lag measurement on a fresh topic and id range.
func lagRun(ctx context.Context, n *node, broker string, iter, perSec, secs int) (res lagResult, err error) {
	total := int64(perSec) * int64(secs)
	// 100 commits a second: small commits, as an OLTP application makes.
	perCommit := max(int64(perSec)/100, 1)
	interval := time.Duration(perCommit) * time.Second / time.Duration(perSec)
	// Row base is the warm-up row; the measured rows are base+1 … base+total.
	base := int64(iter) * 1_000_000_000
	prefix := fmt.Sprintf("cdc.bench.lag%d", iter)
	topic := topicOf(prefix)

	from, err := n.position(ctx)
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	snk := sink.New([]string{broker}, sink.Options{})
	pumpDone := make(chan struct{})
	var pumpErr error
	go func() {
		defer close(pumpDone)
		_, pumpErr = pump(ctx, captureConfig(n, captureServerID+uint32(iter), prefix, from), snk, nil)
	}()

	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{broker}, Topic: topic, Partition: 0, StartOffset: kafka.FirstOffset,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond,
		// The topic appears with the first event; retry soon.
		ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
	})
	// readAt[i] is when row base+1+i was first read (unix ns); only the
	// reader goroutine writes it, and it is read after readerDone.
	readAt := make([]int64, total)
	ackAt := make([]int64, total)
	warm, all := make(chan struct{}), make(chan struct{})
	readerDone := make(chan struct{})
	var readerErr error
	go func() {
		defer close(readerDone)
		var got int64
		warmed := false
		for {
			m, err := reader.ReadMessage(ctx)
			if err != nil {
				readerErr = err
				return
			}
			now := time.Now().UnixNano()
			id, err := keyID(m.Key)
			if err != nil {
				readerErr = fmt.Errorf("offset %d: %w", m.Offset, err)
				return
			}
			switch {
			case id == base && !warmed:
				warmed = true
				close(warm)
			case id > base && id <= base+total && readAt[id-base-1] == 0:
				readAt[id-base-1] = now
				if got++; got == total {
					close(all)
				}
			}
		}
	}()
	// Stop both goroutines whatever the way out, and only then read their
	// results.
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			<-readerDone
			<-pumpDone
			reader.Close()
			snk.Close()
		}
		return errors.Join(ignoreCanceled(pumpErr), ignoreCanceled(readerErr))
	}
	defer stop()
	failed := func(what string) error {
		return fmt.Errorf("%s: %w", what, stop())
	}

	// Warm up: one row through capture, sink and reader, so connects and
	// topic creation are not counted as lag.
	if err := insertOrders(ctx, n.root, base, 1); err != nil {
		return res, err
	}
	warmTimeout := time.NewTimer(60 * time.Second)
	defer warmTimeout.Stop()
	select {
	case <-warm:
	case <-pumpDone:
		return res, failed("pipeline stopped before the warm-up row arrived")
	case <-readerDone:
		return res, failed("reader stopped before the warm-up row arrived")
	case <-warmTimeout.C:
		return res, failed("warm-up row not read from Kafka within 60s")
	}

	tick := time.NewTicker(interval)
	defer tick.Stop()
	start := time.Now()
	for next := int64(0); next < total; {
		select {
		case <-tick.C:
		case <-pumpDone:
			return res, failed(fmt.Sprintf("pipeline stopped after %d rows written", next))
		case <-readerDone:
			return res, failed(fmt.Sprintf("reader stopped after %d rows written", next))
		}
		// Write what the rate says is due by now, so a slow commit (the
		// ticker drops ticks meanwhile) does not lower the rate; a few
		// commits' worth at most, so commits stay small.
		due := min(int64(time.Since(start).Seconds()*float64(perSec)), total)
		cnt := min(max(due-next, 0), 4*perCommit)
		if cnt == 0 {
			continue
		}
		if err := insertOrders(ctx, n.root, base+1+next, cnt); err != nil {
			return res, errors.Join(err, stop())
		}
		t := time.Now().UnixNano()
		for i := next; i < next+cnt; i++ {
			ackAt[i] = t
		}
		next += cnt
	}
	res.writeTime, res.sent = time.Since(start), total

	// Every row should arrive within the goal; give stragglers 30 s so the
	// figures say how late they are instead of only that they are missing.
	drain := time.NewTimer(30 * time.Second)
	defer drain.Stop()
	select {
	case <-all:
	case <-drain.C:
	case <-pumpDone:
	case <-readerDone:
	}
	if err := stop(); err != nil {
		return res, err
	}
	for i := range total {
		if readAt[i] == 0 {
			continue
		}
		res.received++
		lag := time.Duration(readAt[i] - ackAt[i])
		if lag < 0 {
			res.early++
			lag = 0
		}
		res.lags = append(res.lags, lag)
	}
	return res, nil
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// keyID reads the orders key {"id":N}.
func keyID(key []byte) (int64, error) {
	var k struct {
		ID *int64 `json:"id"`
	}
	if err := json.Unmarshal(key, &k); err != nil {
		return 0, fmt.Errorf("key %q: %w", key, err)
	}
	if k.ID == nil {
		return 0, fmt.Errorf("key %q: no id", key)
	}
	return *k.ID, nil
}
