package backup_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func ptr[T any](v T) *T { return &v }

func TestResolve(t *testing.T) {
	t.Parallel()
	plan := backup.PolicyOverride{DailyKeepDays: ptr(14), PITRDays: ptr(14), WindowStart: ptr(3 * time.Hour)}
	inst := backup.PolicyOverride{PITRDays: ptr(3), Enabled: ptr(false)}
	got := backup.Resolve(backup.DefaultPolicy(), plan, inst)
	want := backup.DefaultPolicy()
	want.DailyKeepDays, want.PITRDays, want.WindowStart, want.Enabled = 14, 3, 3*time.Hour, false
	require.Equal(t, want, got)
	require.Equal(t, backup.DefaultPolicy(), backup.Resolve(backup.DefaultPolicy()))
}

func TestPolicyOverrideValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		o     backup.PolicyOverride
		field string
	}{
		{name: "empty is fine", o: backup.PolicyOverride{}},
		{name: "all set and fine", o: backup.PolicyOverride{Enabled: ptr(true), WindowStart: ptr(23 * time.Hour), WindowLength: ptr(24 * time.Hour),
			DailyKeepDays: ptr(30), PITRDays: ptr(30), MonthlyKeepMonths: ptr(0), DrillEvery: ptr(time.Duration(0)), SnapshotEvery: ptr(time.Hour)}},
		{name: "negative daily", o: backup.PolicyOverride{DailyKeepDays: ptr(-1)}, field: "daily_keep_days"},
		{name: "zero daily", o: backup.PolicyOverride{DailyKeepDays: ptr(0)}, field: "daily_keep_days"},
		{name: "negative pitr", o: backup.PolicyOverride{PITRDays: ptr(-2)}, field: "pitr_days"},
		{name: "negative monthly", o: backup.PolicyOverride{MonthlyKeepMonths: ptr(-1)}, field: "monthly_keep_months"},
		{name: "window of more than 24h", o: backup.PolicyOverride{WindowLength: ptr(25 * time.Hour)}, field: "window_length"},
		{name: "empty window", o: backup.PolicyOverride{WindowLength: ptr(time.Duration(0))}, field: "window_length"},
		{name: "start past midnight", o: backup.PolicyOverride{WindowStart: ptr(24 * time.Hour)}, field: "window_start"},
		{name: "negative start", o: backup.PolicyOverride{WindowStart: ptr(-time.Hour)}, field: "window_start"},
		{name: "pitr longer than daily", o: backup.PolicyOverride{DailyKeepDays: ptr(3), PITRDays: ptr(7)}, field: "pitr_days"},
		{name: "drills too often", o: backup.PolicyOverride{DrillEvery: ptr(time.Minute)}, field: "drill_every"},
		{name: "snapshot every zero", o: backup.PolicyOverride{SnapshotEvery: ptr(time.Duration(0))}, field: "snapshot_every"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, backup.ErrInvalid)
			var fe *backup.FieldError
			require.True(t, errors.As(err, &fe))
			require.Equal(t, tc.field, fe.Field)
			require.Contains(t, err.Error(), tc.field)
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, backup.DefaultPolicy().Validate())
	// An instance override that is fine alone but not with the plan's.
	p := backup.Resolve(backup.DefaultPolicy(), backup.PolicyOverride{PITRDays: ptr(14)})
	require.ErrorIs(t, p.Validate(), backup.ErrInvalid)
}

func TestPolicyJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(backup.DefaultPolicy())
	require.NoError(t, err)
	require.JSONEq(t, `{"enabled":true,"window_start":"2h","window_length":"1h","daily_keep_days":7,"pitr_days":7,
		"monthly_keep_months":12,"drill_every":"720h","snapshot_every":"6h"}`, string(b))
	var back backup.Policy
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, backup.DefaultPolicy(), back)

	var o backup.PolicyOverride
	require.NoError(t, json.Unmarshal([]byte(`{"window_start":"1h30m","pitr_days":3,"drill_every":"0s","snapshot_every":null}`), &o))
	require.Equal(t, backup.PolicyOverride{WindowStart: ptr(90 * time.Minute), PITRDays: ptr(3), DrillEvery: ptr(time.Duration(0))}, o)
	b, err = json.Marshal(o)
	require.NoError(t, err)
	require.JSONEq(t, `{"window_start":"1h30m","pitr_days":3,"drill_every":"0s"}`, string(b))

	b, err = json.Marshal(backup.PolicyOverride{})
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(b))

	for name, tc := range map[string]struct{ in, field string }{
		"bad duration":  {`{"window_length":"soon"}`, "window_length"},
		"unknown field": {`{"pitr_day":3}`, "pitr_day"},
		"wrong type":    {`{"daily_keep_days":"7"}`, "daily_keep_days"},
		"number as dur": {`{"window_start":7200}`, "window_start"},
	} {
		var o backup.PolicyOverride
		err := json.Unmarshal([]byte(tc.in), &o)
		var fe *backup.FieldError
		require.True(t, errors.As(err, &fe), "%s: %v", name, err)
		require.Equal(t, tc.field, fe.Field, name)
		require.ErrorIs(t, err, backup.ErrInvalid, name)
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		2 * time.Hour: "2h", 720 * time.Hour: "720h", 90 * time.Minute: "1h30m", 30 * time.Minute: "30m",
		90 * time.Second: "1m30s", 0: "0s", time.Hour + 30*time.Second: "1h0m30s",
	} {
		if got := backup.FormatDuration(d); got != want {
			t.Errorf("backup.FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(backup.FormatDuration(d)); err != nil || back != d {
			t.Errorf("%q does not parse back to %v: %v", backup.FormatDuration(d), d, err)
		}
	}
}
