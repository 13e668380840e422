package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bounds of a policy's values.
const (
	maxDays          = 3650
	maxMonths        = 120
	minDrillEvery    = time.Hour
	minSnapshotEvery = time.Minute
	day              = 24 * time.Hour
)

// FieldError is an invalid policy value; it names the field by its JSON
// key. Every FieldError is an ErrInvalid.
type FieldError struct{ Field, Reason string }

// Error formats the field error.
func (e *FieldError) Error() string { return "invalid " + e.Field + ": " + e.Reason }

// Unwrap makes every FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Resolve applies overrides in order (plan, then instance) to base.
func Resolve(base Policy, overrides ...PolicyOverride) Policy {
	p := base
	for _, o := range overrides {
		set(&p.Enabled, o.Enabled)
		set(&p.WindowStart, o.WindowStart)
		set(&p.WindowLength, o.WindowLength)
		set(&p.DailyKeepDays, o.DailyKeepDays)
		set(&p.PITRDays, o.PITRDays)
		set(&p.MonthlyKeepMonths, o.MonthlyKeepMonths)
		set(&p.DrillEvery, o.DrillEvery)
		set(&p.SnapshotEvery, o.SnapshotEvery)
	}
	return p
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Validate reports an override that cannot be applied (negative counts,
// a window of more than 24h, a PITR window longer than the daily
// retention, ...), wrapping ErrInvalid and naming the field (*FieldError).
// It checks the fields the override sets; Policy.Validate checks the
// resolved policy, where an override's value meets the ones below it.
func (o PolicyOverride) Validate() error {
	if o.WindowStart != nil {
		if err := checkWindowStart(*o.WindowStart); err != nil {
			return err
		}
	}
	if o.WindowLength != nil {
		if err := checkWindowLength(*o.WindowLength); err != nil {
			return err
		}
	}
	if o.DailyKeepDays != nil {
		if err := checkRange("daily_keep_days", *o.DailyKeepDays, 1, maxDays); err != nil {
			return err
		}
	}
	if o.PITRDays != nil {
		if err := checkRange("pitr_days", *o.PITRDays, 0, maxDays); err != nil {
			return err
		}
	}
	if o.DailyKeepDays != nil && o.PITRDays != nil {
		if err := checkPITR(*o.PITRDays, *o.DailyKeepDays); err != nil {
			return err
		}
	}
	if o.MonthlyKeepMonths != nil {
		if err := checkRange("monthly_keep_months", *o.MonthlyKeepMonths, 0, maxMonths); err != nil {
			return err
		}
	}
	if o.DrillEvery != nil {
		if err := checkDrillEvery(*o.DrillEvery); err != nil {
			return err
		}
	}
	if o.SnapshotEvery != nil {
		if err := checkSnapshotEvery(*o.SnapshotEvery); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports a policy that cannot be applied, as PolicyOverride's
// Validate does for each field, and a PITR window longer than the daily
// retention.
func (p Policy) Validate() error {
	o := PolicyOverride{
		Enabled: &p.Enabled, WindowStart: &p.WindowStart, WindowLength: &p.WindowLength,
		DailyKeepDays: &p.DailyKeepDays, PITRDays: &p.PITRDays, MonthlyKeepMonths: &p.MonthlyKeepMonths,
		DrillEvery: &p.DrillEvery, SnapshotEvery: &p.SnapshotEvery,
	}
	return o.Validate()
}

func checkWindowStart(d time.Duration) error {
	if d < 0 || d >= day {
		return &FieldError{Field: "window_start", Reason: fmt.Sprintf("%s is not a time of day (0 to 24h, exclusive)", FormatDuration(d))}
	}
	return nil
}

func checkWindowLength(d time.Duration) error {
	if d <= 0 || d > day {
		return &FieldError{Field: "window_length", Reason: fmt.Sprintf("%s must be more than 0 and at most 24h", FormatDuration(d))}
	}
	return nil
}

func checkRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return &FieldError{Field: field, Reason: fmt.Sprintf("%d is not between %d and %d", v, lo, hi)}
	}
	return nil
}

func checkPITR(pitr, daily int) error {
	if pitr > daily {
		return &FieldError{Field: "pitr_days", Reason: fmt.Sprintf("%d is longer than daily_keep_days %d", pitr, daily)}
	}
	return nil
}

func checkDrillEvery(d time.Duration) error {
	if d != 0 && d < minDrillEvery {
		return &FieldError{Field: "drill_every", Reason: fmt.Sprintf("%s must be 0 (no drills) or at least %s", FormatDuration(d), FormatDuration(minDrillEvery))}
	}
	return nil
}

func checkSnapshotEvery(d time.Duration) error {
	if d < minSnapshotEvery {
		return &FieldError{Field: "snapshot_every", Reason: fmt.Sprintf("%s must be at least %s", FormatDuration(d), FormatDuration(minSnapshotEvery))}
	}
	return nil
}

// FormatDuration is d.String() without the zero units it ends with
// ("2h0m0s" is "2h", "720h0m0s" is "720h"): how policies spell durations
// on the wire.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// policyJSON is Policy on the wire: durations as Go duration strings.
type policyJSON struct {
	Enabled           bool   `json:"enabled"`
	WindowStart       string `json:"window_start"`
	WindowLength      string `json:"window_length"`
	DailyKeepDays     int    `json:"daily_keep_days"`
	PITRDays          int    `json:"pitr_days"`
	MonthlyKeepMonths int    `json:"monthly_keep_months"`
	DrillEvery        string `json:"drill_every"`
	SnapshotEvery     string `json:"snapshot_every"`
}

// MarshalJSON writes durations as strings ("2h", "720h").
func (p Policy) MarshalJSON() ([]byte, error) {
	return json.Marshal(policyJSON{
		Enabled: p.Enabled, WindowStart: FormatDuration(p.WindowStart), WindowLength: FormatDuration(p.WindowLength),
		DailyKeepDays: p.DailyKeepDays, PITRDays: p.PITRDays, MonthlyKeepMonths: p.MonthlyKeepMonths,
		DrillEvery: FormatDuration(p.DrillEvery), SnapshotEvery: FormatDuration(p.SnapshotEvery),
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var j policyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode policy: %w", err)
	}
	out := Policy{Enabled: j.Enabled, DailyKeepDays: j.DailyKeepDays, PITRDays: j.PITRDays, MonthlyKeepMonths: j.MonthlyKeepMonths}
	for _, f := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{
		{"window_start", j.WindowStart, &out.WindowStart}, {"window_length", j.WindowLength, &out.WindowLength},
		{"drill_every", j.DrillEvery, &out.DrillEvery}, {"snapshot_every", j.SnapshotEvery, &out.SnapshotEvery},
	} {
		if f.s == "" {
			continue
		}
		d, err := parseDuration(f.name, f.s)
		if err != nil {
			return err
		}
		*f.dst = d
	}
	*p = out
	return nil
}

// overrideJSON is PolicyOverride on the wire.
type overrideJSON struct {
	Enabled           *bool   `json:"enabled,omitempty"`
	WindowStart       *string `json:"window_start,omitempty"`
	WindowLength      *string `json:"window_length,omitempty"`
	DailyKeepDays     *int    `json:"daily_keep_days,omitempty"`
	PITRDays          *int    `json:"pitr_days,omitempty"`
	MonthlyKeepMonths *int    `json:"monthly_keep_months,omitempty"`
	DrillEvery        *string `json:"drill_every,omitempty"`
	SnapshotEvery     *string `json:"snapshot_every,omitempty"`
}

// MarshalJSON writes the fields set, durations as strings.
func (o PolicyOverride) MarshalJSON() ([]byte, error) {
	dur := func(d *time.Duration) *string {
		if d == nil {
			return nil
		}
		s := FormatDuration(*d)
		return &s
	}
	return json.Marshal(overrideJSON{
		Enabled: o.Enabled, WindowStart: dur(o.WindowStart), WindowLength: dur(o.WindowLength),
		DailyKeepDays: o.DailyKeepDays, PITRDays: o.PITRDays, MonthlyKeepMonths: o.MonthlyKeepMonths,
		DrillEvery: dur(o.DrillEvery), SnapshotEvery: dur(o.SnapshotEvery),
	})
}

// UnmarshalJSON reads an override; a null or absent field keeps the value
// below. It refuses unknown fields (a misspelt key would otherwise change
// nothing without a word) and durations that do not parse, with a
// *FieldError.
func (o *PolicyOverride) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j overrideJSON
	if err := dec.Decode(&j); err != nil {
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return &FieldError{Field: strings.Trim(field, `"`), Reason: "is not a policy field"}
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &FieldError{Field: te.Field, Reason: "must be a " + te.Type.String() + ", not a " + te.Value}
		}
		return fmt.Errorf("decode policy override: %w", err)
	}
	out := PolicyOverride{Enabled: j.Enabled, DailyKeepDays: j.DailyKeepDays, PITRDays: j.PITRDays, MonthlyKeepMonths: j.MonthlyKeepMonths}
	for _, f := range []struct {
		name string
		s    *string
		dst  **time.Duration
	}{
		{"window_start", j.WindowStart, &out.WindowStart}, {"window_length", j.WindowLength, &out.WindowLength},
		{"drill_every", j.DrillEvery, &out.DrillEvery}, {"snapshot_every", j.SnapshotEvery, &out.SnapshotEvery},
	} {
		if f.s == nil {
			continue
		}
		d, err := parseDuration(f.name, *f.s)
		if err != nil {
			return err
		}
		*f.dst = &d
	}
	*o = out
	return nil
}

// parseDuration reads a Go duration string ("2h", "90m").
func parseDuration(field, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &FieldError{Field: field, Reason: fmt.Sprintf("%q is not a duration such as \"2h\" or \"90m\"", s)}
	}
	return d, nil
}
