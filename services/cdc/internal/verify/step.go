package verify

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"strconv"
	"sync"
)

// maxSparseness is how many key values per row (by the optimizer's
// estimate) a key may span and still be cut by key arithmetic.
const maxSparseness = 4

// maxStep bounds a step, in ChunkSizes: the rows a chunk may hold, and
// how fast the stepper crosses a gap.
const maxStep = 16

// stepper cuts a table with a single integer key into chunks by key
// arithmetic, (lo, lo+step], so that no query finds the bounds: a keyset
// bound (LIMIT 1 OFFSET n) reads every row of the table a second time on
// the source, a sixth of a verification's work. The step adapts to the
// key density the checksums count, so gaps cost a few empty chunks and
// dense runs are cut small again; a chunk may still hold up to maxStep
// ChunkSizes of rows after a gap, which only its drill-down cares about.
type stepper struct {
	size     int64
	unsigned bool
	min, max *big.Int // the source's key range when the scan began

	mu   sync.Mutex
	step *big.Int
}

// newStepper reads t's key range on the source; nil if t's key is not a
// single integer column.
func (v *verifier) newStepper(ctx context.Context, t *table) (*stepper, error) {
	if len(t.key) != 1 || (t.key[0].kind != kindSigned && t.key[0].kind != kindUnsigned) {
		return nil, nil
	}
	k := quote(t.key[0].name)
	var lo, hi sql.NullString
	q := "SELECT MIN(" + k + "), MAX(" + k + ") FROM " + t.from
	if err := v.src.QueryRowContext(ctx, q).Scan(&lo, &hi); err != nil {
		return nil, fmt.Errorf("key range of %s on %s: %w", t, v.cfg.Source.Addr, err)
	}
	s := &stepper{size: int64(v.cfg.ChunkSize), unsigned: t.key[0].kind == kindUnsigned, step: big.NewInt(int64(v.cfg.ChunkSize))}
	if !lo.Valid {
		return s, nil // empty: one open chunk
	}
	lowest, ok1 := new(big.Int).SetString(lo.String, 10)
	s.max, _ = new(big.Int).SetString(hi.String, 10)
	if !ok1 || s.max == nil {
		return nil, fmt.Errorf("key range of %s on %s: %q..%q", t, v.cfg.Source.Addr, lo.String, hi.String)
	}
	// An integer key holds at most one row per value, so a step of n
	// values never cuts a chunk of more than n rows. A key much sparser
	// than the optimizer's row estimate (ids hashed or clustered far
	// apart) is cut by keyset instead: steps wide enough to cross its gaps
	// quickly could swallow millions of rows at once.
	var est sql.NullInt64
	if err := v.src.QueryRowContext(ctx, `SELECT TABLE_ROWS FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, t.db, t.name).Scan(&est); err != nil {
		return nil, fmt.Errorf("row estimate of %s on %s: %w", t, v.cfg.Source.Addr, err)
	}
	span := new(big.Int).Sub(s.max, lowest)
	span.Add(span, big.NewInt(1))
	if est.Int64 <= 0 || span.Cmp(big.NewInt(maxSparseness*est.Int64)) > 0 {
		return nil, nil
	}
	// Cut at about ChunkSize rows by the average density; exactly
	// ChunkSize on a dense key (an auto-increment column).
	s.step = big.NewInt(s.size * max(1, span.Int64()/est.Int64))
	s.min = lowest
	return s, nil
}

// next is the upper bound of the chunk after lo (nil lo: the first
// chunk); nil once the source's largest key is covered: that chunk is the
// last and open-ended.
func (s *stepper) next(lo []any) []any {
	if s.max == nil {
		return nil
	}
	s.mu.Lock()
	step := new(big.Int).Set(s.step)
	s.mu.Unlock()
	var hi *big.Int
	if lo == nil {
		hi = new(big.Int).Sub(s.min, big.NewInt(1))
	} else {
		hi = s.int(lo)
	}
	hi.Add(hi, step)
	if hi.Cmp(s.max) > 0 {
		return nil
	}
	if s.unsigned {
		return []any{hi.Uint64()}
	}
	return []any{hi.Int64()}
}

// observe adapts the step to a closed chunk's source row count.
func (s *stepper) observe(c *chunk) {
	if c.lo == nil || c.hi == nil {
		return
	}
	n := c.src.count
	if n >= s.size/2 && n <= 2*s.size {
		return // close enough: a steady step keeps chunks comparable
	}
	span := new(big.Int).Sub(s.int(c.hi), s.int(c.lo))
	step := new(big.Int).Mul(span, big.NewInt(8)) // an empty chunk: a gap
	if n > 0 {
		step.Mul(span, big.NewInt(s.size))
		step.Div(step, big.NewInt(n))
	}
	if lo := big.NewInt(s.size); step.Cmp(lo) < 0 {
		step = lo
	} else if hi := big.NewInt(maxStep * s.size); step.Cmp(hi) > 0 {
		step = hi
	}
	s.mu.Lock()
	s.step = step
	s.mu.Unlock()
}

func (s *stepper) int(k []any) *big.Int {
	switch x := k[0].(type) {
	case int64:
		return big.NewInt(x)
	case uint64:
		return new(big.Int).SetUint64(x)
	}
	panic("stepper: key " + strconv.Quote(fmt.Sprint(k[0])) + " is not an integer")
}

// pieces cuts a chunk of an integer key that holds more than twice
// ChunkSize rows (after a gap, the stepper may cut one) into keyset pieces
// of ChunkSize source rows, so that a drill-down never holds more than
// that many keys per side at once.
func (v *verifier) pieces(ctx context.Context, t *table, c *chunk) ([]*chunk, error) {
	if max(c.src.count, c.tgt.count) <= 2*int64(v.cfg.ChunkSize) || len(t.key) != 1 ||
		(t.key[0].kind != kindSigned && t.key[0].kind != kindUnsigned) {
		return []*chunk{c}, nil
	}
	s := &stepper{}
	var out []*chunk
	lo := c.lo
	for {
		b, err := v.nextBound(ctx, t, lo)
		if err != nil {
			return nil, err
		}
		if b == nil || (c.hi != nil && s.int(b).Cmp(s.int(c.hi)) >= 0) {
			return append(out, &chunk{idx: c.idx, lo: lo, hi: c.hi}), nil
		}
		out = append(out, &chunk{idx: c.idx, lo: lo, hi: b})
		lo = b
	}
}
