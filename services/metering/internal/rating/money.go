package rating

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// Money and quantities are exact rationals (math/big.Rat): stored decimals
// are read as strings and only rounded when shown, so that a month of
// hourly rows adds up to the cent the way the single line would.

// Fraction digits of the shown figures.
const (
	quantityDigits = 9 // invoice quantities, rated event quantities and amounts
	costDigits     = 6 // /costs amounts
	centDigits     = 2 // invoice amounts and totals, budgets
)

var plainDecimal = regexp.MustCompile(`^[0-9]{1,20}(\.[0-9]{1,20})?$`)

// parseDecimal reads a non-negative plain decimal ("12", "0.125"), the
// only form money and prices accept (no sign, exponent or fraction).
func parseDecimal(s string) (*big.Rat, bool) {
	if !plainDecimal.MatchString(s) {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// ratFromDB reads a DECIMAL column's text; NULL-free columns only.
func ratFromDB(s string) (*big.Rat, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return nil, fmt.Errorf("decimal %q from the database", s)
	}
	return r, nil
}

// fixed formats r with digits fraction digits, the last one rounded half
// away from zero (big.Rat.FloatString's rule, the one the bill states).
func fixed(r *big.Rat, digits int) string {
	if r == nil {
		r = new(big.Rat)
	}
	s := r.FloatString(digits)
	if s == "-0" || strings.HasPrefix(s, "-0.") && strings.Trim(s[3:], "0") == "" {
		s = s[1:] // a tiny negative rounds to zero, not minus zero
	}
	return s
}

// round returns r rounded to digits fraction digits (half away from zero).
func round(r *big.Rat, digits int) *big.Rat {
	out, _ := new(big.Rat).SetString(r.FloatString(digits))
	return out
}

// trimmed formats a price: as many fraction digits as it has (up to 9),
// at least two, so "0.12" and "0.000125" read as written.
func trimmed(r *big.Rat) string {
	s := r.FloatString(quantityDigits)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = strings.TrimRight(s, "0")
		if frac := len(s) - i - 1; frac < centDigits {
			s += strings.Repeat("0", centDigits-frac)
		}
	}
	return s
}

func ratInt(n int64) *big.Rat { return new(big.Rat).SetInt64(n) }

func mul(a, b *big.Rat) *big.Rat { return new(big.Rat).Mul(a, b) }

func quo(a, b *big.Rat) *big.Rat { return new(big.Rat).Quo(a, b) }
