package loadpeer

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions shape one redis-benchmark run; zero fields take the
// defaults noted.
type RedisOptions struct {
	// Clients is redis-benchmark's -c (default 50).
	Clients int
	// Requests is -n, per test (default 100000).
	Requests int
	// Pipeline is -P (default 1: no pipelining).
	Pipeline int
	// Tests is -t (default "set,get").
	Tests string
	// KeySpace is -r: random keys in [0, KeySpace) (default 100000).
	KeySpace int
}

func (o RedisOptions) withDefaults() RedisOptions {
	if o.Clients <= 0 {
		o.Clients = 50
	}
	if o.Requests <= 0 {
		o.Requests = 100000
	}
	if o.Pipeline <= 0 {
		o.Pipeline = 1
	}
	if o.Tests == "" {
		o.Tests = "set,get"
	}
	if o.KeySpace <= 0 {
		o.KeySpace = 100000
	}
	return o
}

// redisBenchmarkArgs is the command line for addr (host:port) and o (with
// defaults); the password is the caller's to add.
func redisBenchmarkArgs(host, port string, o RedisOptions) []string {
	return []string{"-h", host, "-p", port, "-c", strconv.Itoa(o.Clients), "-n", strconv.Itoa(o.Requests),
		"-P", strconv.Itoa(o.Pipeline), "-t", o.Tests, "-r", strconv.Itoa(o.KeySpace), "--csv", "--precision", "3"}
}

// RedisBenchmark runs redis-benchmark against addr as user/password (both
// empty: no AUTH) and returns one Result per test, named "redis <TEST>
// P<pipeline>". It first checks that addr answers PING with those
// credentials: redis-benchmark spins forever on a refused connection.
func RedisBenchmark(ctx context.Context, addr, user, password string, o RedisOptions) ([]Result, error) {
	o = o.withDefaults()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark address %q: %w", addr, err)
	}
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark: %w", err)
	}
	if err := pingRedis(ctx, addr, user, password); err != nil {
		return nil, err
	}
	args := redisBenchmarkArgs(host, port, o)
	if password != "" {
		args = append(args, "-a", password)
		if user != "" {
			args = append(args, "--user", user)
		}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("redis-benchmark against %s: %w: %s", addr, err, tail(append(stderr.Bytes(), stdout.Bytes()...)))
	}
	rs, err := parseRedisCSV(&stdout, fmt.Sprintf("P%d", o.Pipeline))
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark against %s: %w (stderr: %s)", addr, err, tail(stderr.Bytes()))
	}
	return rs, nil
}

// pingRedis checks that addr answers an authenticated PING within 5s.
func pingRedis(ctx context.Context, addr, user, password string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: password, Protocol: 2,
		DialTimeout: 2 * time.Second, DialerRetries: 1, MaxRetries: -1, PoolSize: 1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s does not answer PING: %w", addr, err)
	}
	return nil
}

// parseRedisCSV reads redis-benchmark --csv output (Redis 7: a header
// naming test, rps and the latency percentiles in ms, then a row per test)
// and names each result "redis <TEST> <suffix>".
func parseRedisCSV(r io.Reader, suffix string) ([]Result, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read the csv header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"test", "rps", "p50_latency_ms", "p99_latency_ms"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("csv header %q has no %s column (redis-benchmark older than 7?)", strings.Join(header, ","), need)
		}
	}
	var out []Result
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the csv: %w", err)
		}
		if len(rec) != len(header) {
			return nil, fmt.Errorf("csv row %q: %d fields, the header has %d", strings.Join(rec, ","), len(rec), len(header))
		}
		rps, err := strconv.ParseFloat(rec[col["rps"]], 64)
		if err != nil {
			return nil, fmt.Errorf("test %s: rps %q: %w", rec[col["test"]], rec[col["rps"]], err)
		}
		p50, err := parseMS(rec[col["p50_latency_ms"]])
		if err != nil {
			return nil, fmt.Errorf("test %s: p50: %w", rec[col["test"]], err)
		}
		p99, err := parseMS(rec[col["p99_latency_ms"]])
		if err != nil {
			return nil, fmt.Errorf("test %s: p99: %w", rec[col["test"]], err)
		}
		out = append(out, Result{Name: "redis " + rec[col["test"]] + " " + suffix, OpsPerSec: rps, P50: p50, P99: p99})
	}
	if len(out) == 0 {
		return nil, errors.New("no test in the csv")
	}
	return out, nil
}

func parseMS(s string) (time.Duration, error) {
	ms, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q ms: %w", s, err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}
