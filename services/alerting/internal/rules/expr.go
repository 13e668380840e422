package rules

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// expr is a parsed sample expression: num [/ den] op threshold.
type expr struct {
	num, den  string // den "" when there is no division
	op        string
	threshold float64
}

// parseExpr parses `metric OP number` or `metric / metric OP number`.
// Spaces around the tokens are optional.
func parseExpr(s string) (expr, error) {
	toks, err := tokenize(s)
	if err != nil {
		return expr{}, fmt.Errorf("expr %q: %w", s, err)
	}
	var e expr
	switch {
	case len(toks) == 3 && isMetric(toks[0]):
		e.num, e.op = toks[0], toks[1]
	case len(toks) == 5 && isMetric(toks[0]) && toks[1] == "/" && isMetric(toks[2]):
		e.num, e.den, e.op = toks[0], toks[2], toks[3]
	default:
		return expr{}, fmt.Errorf("expr %q: want `metric OP number` or `metric / metric OP number`", s)
	}
	if !isComparison(e.op) {
		return expr{}, fmt.Errorf("expr %q: %q is not one of > >= < <= == !=", s, e.op)
	}
	v, err := strconv.ParseFloat(toks[len(toks)-1], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return expr{}, fmt.Errorf("expr %q: threshold %q is not a number", s, toks[len(toks)-1])
	}
	e.threshold = v
	return e, nil
}

// tokenize splits into metric names, numbers, "/" and comparison
// operators.
func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '/':
			toks = append(toks, "/")
			i++
		case strings.ContainsRune("<>=!", rune(c)):
			n := 1
			if i+1 < len(s) && s[i+1] == '=' {
				n = 2
			}
			toks = append(toks, s[i:i+n])
			i += n
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return toks, nil
}

// isWordByte covers metric names and numbers (1e3, -0.5, 0.85).
func isWordByte(c byte) bool {
	return c == '_' || c == '.' || c == '-' || c == '+' ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isMetric(s string) bool { return labelPattern.MatchString(s) }

func isComparison(op string) bool {
	switch op {
	case ">", ">=", "<", "<=", "==", "!=":
		return true
	}
	return false
}

// eval computes the expression's value over metrics. ok is false when a
// metric is missing or the divisor is zero: the rule has no value then.
func (e expr) eval(metrics map[string]int64) (value float64, ok bool) {
	n, ok := metrics[e.num]
	if !ok {
		return 0, false
	}
	value = float64(n)
	if e.den != "" {
		d, ok := metrics[e.den]
		if !ok || d == 0 {
			return 0, false
		}
		value /= float64(d)
	}
	return value, true
}

// holds reports whether value satisfies the comparison.
func (e expr) holds(value float64) bool {
	switch e.op {
	case ">":
		return value > e.threshold
	case ">=":
		return value >= e.threshold
	case "<":
		return value < e.threshold
	case "<=":
		return value <= e.threshold
	case "==":
		return value == e.threshold
	case "!=":
		return value != e.threshold
	}
	return false
}
