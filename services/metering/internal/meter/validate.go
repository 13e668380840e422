package meter

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// slugPattern is what a custom meter's slug may be: it names the meter in
// URLs, query parameters, CSV columns and price rows.
var slugPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}$`)

// IsBuiltin reports whether slug names a built-in meter.
func IsBuiltin(slug string) bool {
	for _, b := range Builtins() {
		if b.Slug == slug {
			return true
		}
	}
	return false
}

// ValidateMeter checks a custom meter definition; FieldErrors on failure.
// A Scale of 0 is accepted and means 1 (callers store 1); a negative or
// non-finite scale is not. Field names are the JSON ones.
func ValidateMeter(m Meter) error {
	var errs FieldErrors
	fail := func(field, detail string) { errs = append(errs, FieldError{field, detail}) }
	tooLong := func(field, v string, n int) {
		if len(v) > n {
			fail(field, fmt.Sprintf("must be at most %d bytes", n))
		}
	}
	switch {
	case m.Slug == "":
		fail("slug", "is required")
	case !slugPattern.MatchString(m.Slug):
		fail("slug", "must be 2-63 characters: a lower-case letter, then lower-case letters, digits or _")
	case IsBuiltin(m.Slug):
		fail("slug", "names a built-in meter")
	}
	if m.Name == "" {
		fail("name", "is required")
	}
	tooLong("name", m.Name, 128)
	tooLong("description", m.Description, 512)
	if m.Unit == "" {
		fail("unit", "is required")
	}
	tooLong("unit", m.Unit, 32)
	if !m.Aggregation.Valid() {
		fail("aggregation", "must be one of SUM, COUNT, MAX, AVG, UNIQUE_COUNT")
	}
	if m.EventType == "" {
		fail("event_type", "is required")
	}
	tooLong("event_type", m.EventType, maxAttrLen)
	if m.ValueProperty == "" && m.Aggregation.Valid() && m.Aggregation != Count {
		fail("value_property", fmt.Sprintf("is required for %s", m.Aggregation))
	}
	tooLong("value_property", m.ValueProperty, 255)
	if m.ValueProperty != "" && slices.Contains(strings.Split(m.ValueProperty, "."), "") {
		fail("value_property", `must be a dot path of data's fields ("usage.tokens")`)
	}
	if m.Scale < 0 || math.IsNaN(m.Scale) || math.IsInf(m.Scale, 0) {
		fail("scale", "must be a positive number (0 or absent means 1)")
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
