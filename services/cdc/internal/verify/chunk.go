package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
)

// sum is one side's checksum of a chunk.
type sum struct {
	count int64
	crc   uint64
}

// chunk is the key range (lo, hi] of a table; a nil bound is open. The
// last chunk has no hi, so target rows past the source's last key fall in
// it.
type chunk struct {
	idx      int
	lo, hi   []any
	src, tgt sum
}

func (c *chunk) differs() bool { return c.src != c.tgt }

// scan cuts t into chunks (by key arithmetic for a single integer key,
// else by keyset on the source) while Parallel workers checksum the
// chunks already cut, on both sides at once.
func (v *verifier) scan(ctx context.Context, t *table) ([]*chunk, error) {
	st, err := v.newStepper(ctx, t)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo := make(chan *chunk, v.cfg.Parallel)
	var (
		mu     sync.Mutex
		chunks []*chunk
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		defer close(todo)
		var lo []any
		for i := 0; ; i++ {
			var hi []any
			if st != nil {
				hi = st.next(lo)
			} else if hi, err = v.nextBound(ctx, t, lo); err != nil {
				cancel(err)
				return
			}
			c := &chunk{idx: i, lo: lo, hi: hi}
			mu.Lock()
			chunks = append(chunks, c)
			mu.Unlock()
			select {
			case todo <- c:
			case <-ctx.Done():
				return
			}
			if hi == nil {
				return
			}
			lo = hi
		}
	})
	for range v.cfg.Parallel {
		wg.Go(func() {
			for c := range todo {
				if ctx.Err() != nil {
					continue // drain, so the cutter never blocks
				}
				if err := v.sum(ctx, t, c); err != nil {
					cancel(err)
				} else if st != nil {
					st.observe(c)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return chunks, nil
}

// check checksums the chunks again, Parallel at once.
func (v *verifier) check(ctx context.Context, t *table, chunks []*chunk) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, v.cfg.Parallel)
	var wg sync.WaitGroup
	for _, c := range chunks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := v.sum(ctx, t, c); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// nextBound is the key ChunkSize rows after lo on the source (nil: fewer
// rows remain, the chunk is the last one).
func (v *verifier) nextBound(ctx context.Context, t *table, lo []any) ([]any, error) {
	where, args := t.where(lo, nil)
	q := "SELECT " + t.keyList + " FROM " + t.from + where + " ORDER BY " + t.keyList +
		" LIMIT 1 OFFSET " + strconv.Itoa(v.cfg.ChunkSize-1)
	raw := make([]sql.RawBytes, len(t.key))
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	rows, err := v.src.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("chunk bound of %s on %s: %w", t, v.cfg.Source.Addr, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("chunk bound of %s on %s: %w", t, v.cfg.Source.Addr, err)
		}
		return nil, nil
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, fmt.Errorf("chunk bound of %s on %s: %w", t, v.cfg.Source.Addr, err)
	}
	b := make([][]byte, len(raw))
	for i, r := range raw {
		b[i] = r
	}
	return t.keyArgs(b)
}

// sum checksums c on both sides at once.
func (v *verifier) sum(ctx context.Context, t *table, c *chunk) error {
	where, args := t.where(c.lo, c.hi)
	q := t.chunkSQL + where
	return v.both(func(db *sql.DB, side int, addr string) error {
		var s sum
		if err := db.QueryRowContext(ctx, t.on(side, q), args...).Scan(&s.count, &s.crc); err != nil {
			return fmt.Errorf("checksum chunk %d of %s on %s: %w", c.idx, t, addr, err)
		}
		if side == 0 {
			c.src = s
		} else {
			c.tgt = s
		}
		return nil
	})
}
