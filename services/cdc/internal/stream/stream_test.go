package stream

import (
	"errors"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/services/cdc/internal/change"
)

var now = time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)

func TestValidate(t *testing.T) {
	cases := map[string]struct {
		spec   Spec
		fields []string // the invalid fields, in order; none = valid
	}{
		"one table":         {spec: Spec{Tables: []string{"app.orders"}, Snapshot: SnapshotInitial}},
		"wildcard, $ and _": {spec: Spec{Tables: []string{"app.*", "a_b$1.t_2"}, Exclude: []string{"app.audit"}, Snapshot: SnapshotNever}},
		"no tables":         {spec: Spec{Snapshot: SnapshotInitial}, fields: []string{"tables"}},
		"no db part":        {spec: Spec{Tables: []string{"orders"}, Snapshot: SnapshotInitial}, fields: []string{"tables[0]"}},
		"any db":            {spec: Spec{Tables: []string{"*.*"}, Snapshot: SnapshotInitial}, fields: []string{"tables[0]"}},
		"empty table":       {spec: Spec{Tables: []string{"app."}, Snapshot: SnapshotInitial}, fields: []string{"tables[0]"}},
		"quoted name":       {spec: Spec{Tables: []string{"app.`x`"}, Snapshot: SnapshotInitial}, fields: []string{"tables[0]"}},
		"three parts":       {spec: Spec{Tables: []string{"app.a.b"}, Snapshot: SnapshotInitial}, fields: []string{"tables[0]"}},
		"system schema":     {spec: Spec{Tables: []string{"app.t", "mysql.user", "SYS.*"}, Snapshot: SnapshotInitial}, fields: []string{"tables[1]", "tables[2]"}},
		"sync watermarks":   {spec: Spec{Tables: []string{"_canopy_sync.watermarks"}, Snapshot: SnapshotInitial}, fields: []string{"tables[0]"}},
		"bad exclude":       {spec: Spec{Tables: []string{"app.*"}, Exclude: []string{"information_schema.tables"}, Snapshot: SnapshotInitial}, fields: []string{"exclude_tables[0]"}},
		"bad snapshot":      {spec: Spec{Tables: []string{"app.*"}, Snapshot: "sometimes"}, fields: []string{"snapshot"}},
		"snapshot unset":    {spec: Spec{Tables: []string{"app.*"}}, fields: []string{"snapshot"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.spec.Validate()
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("valid spec rejected: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error %T lists no fields", err)
			}
			var got []string
			for _, e := range joined.Unwrap() {
				got = append(got, e.(*ValidationError).Field)
			}
			if len(got) != len(tc.fields) {
				t.Fatalf("invalid fields %v, want %v", got, tc.fields)
			}
			for i := range got {
				if got[i] != tc.fields[i] {
					t.Fatalf("invalid fields %v, want %v", got, tc.fields)
				}
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	if got := (Spec{Tables: []string{"a.b"}}).WithDefaults(); got.Snapshot != SnapshotInitial {
		t.Fatalf("default snapshot %q", got.Snapshot)
	}
	if got := (Spec{Snapshot: SnapshotNever}).WithDefaults(); got.Snapshot != SnapshotNever {
		t.Fatalf("explicit snapshot replaced by %q", got.Snapshot)
	}
}

func TestIncludes(t *testing.T) {
	spec := Spec{Tables: []string{"app.*", "billing.invoices"}, Exclude: []string{"app.audit"}}
	cases := map[string]struct {
		db, table string
		want      bool
	}{
		"wildcard":             {"app", "orders", true},
		"excluded":             {"app", "audit", false},
		"exact":                {"billing", "invoices", true},
		"other table":          {"billing", "payments", false},
		"other db":             {"shop", "orders", false},
		"case differs":         {"App", "orders", false},
		"db prefix only":       {"app2", "orders", false},
		"system schema always": {"mysql", "user", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := spec.Includes(tc.db, tc.table); got != tc.want {
				t.Fatalf("Includes(%s, %s) = %v", tc.db, tc.table, got)
			}
		})
	}
	if (Spec{Tables: []string{"_canopy_sync.*"}}).Includes("_canopy_sync", "watermarks") {
		t.Fatal("the sync jobs' watermark schema was included")
	}
	if (Spec{Tables: []string{"mysql.*"}}).Includes("mysql", "user") {
		t.Fatal("a system schema was included by a (invalid) pattern")
	}
}

func TestNewStartsFromTheSpec(t *testing.T) {
	s := New("s1", "acme", "i1", Spec{Tables: []string{"app.*"}, Snapshot: SnapshotInitial}, now)
	if s.State != StateSnapshotting || s.Status.State != StateSnapshotting || !s.SnapshotPending() || s.Prefix() != "cdc.acme.i1" {
		t.Fatalf("initial stream %+v", s)
	}
	s = New("s2", "acme", "i1", Spec{Tables: []string{"app.*"}, Snapshot: SnapshotNever}, now)
	if s.State != StateStreaming || s.SnapshotPending() {
		t.Fatalf("never stream %+v", s)
	}
}

func TestTransitions(t *testing.T) {
	streaming := change.Checkpoint{GTID: "0-1-42", Events: 10}
	midSnapshot := change.Checkpoint{GTID: "0-1-7", Snapshot: []byte(`{"gtid":"0-1-7"}`)}
	cases := map[string]struct {
		from   State
		cp     change.Checkpoint
		snap   Snapshot
		action Action
		want   State // "" = a *TransitionError
	}{
		"pause streaming":             {StateStreaming, streaming, SnapshotInitial, ActionPause, StatePaused},
		"pause snapshotting":          {StateSnapshotting, midSnapshot, SnapshotInitial, ActionPause, StatePaused},
		"pause paused (repeated)":     {StatePaused, streaming, SnapshotInitial, ActionPause, StatePaused},
		"pause failed":                {StateFailed, streaming, SnapshotInitial, ActionPause, ""},
		"pause deleting":              {StateDeleting, streaming, SnapshotInitial, ActionPause, ""},
		"resume after snapshot":       {StatePaused, streaming, SnapshotInitial, ActionResume, StateStreaming},
		"resume mid-snapshot":         {StatePaused, midSnapshot, SnapshotInitial, ActionResume, StateSnapshotting},
		"resume before snapshot":      {StatePaused, change.Checkpoint{}, SnapshotInitial, ActionResume, StateSnapshotting},
		"resume never-snapshot":       {StatePaused, change.Checkpoint{}, SnapshotNever, ActionResume, StateStreaming},
		"retry failed":                {StateFailed, streaming, SnapshotInitial, ActionResume, StateStreaming},
		"retry failed mid-snapshot":   {StateFailed, midSnapshot, SnapshotInitial, ActionResume, StateSnapshotting},
		"resume streaming (no-op)":    {StateStreaming, streaming, SnapshotInitial, ActionResume, StateStreaming},
		"resume snapshotting (no-op)": {StateSnapshotting, midSnapshot, SnapshotInitial, ActionResume, StateSnapshotting},
		"resume deleting":             {StateDeleting, streaming, SnapshotInitial, ActionResume, ""},
		"resnapshot failed":           {StateFailed, streaming, SnapshotNever, ActionResnapshot, StateSnapshotting},
		"resnapshot streaming":        {StateStreaming, streaming, SnapshotInitial, ActionResnapshot, StateSnapshotting},
		"resnapshot paused":           {StatePaused, streaming, SnapshotInitial, ActionResnapshot, StateSnapshotting},
		"resnapshot deleting":         {StateDeleting, streaming, SnapshotInitial, ActionResnapshot, ""},
		"delete streaming":            {StateStreaming, streaming, SnapshotInitial, ActionDelete, StateDeleting},
		"delete failed":               {StateFailed, streaming, SnapshotInitial, ActionDelete, StateDeleting},
		"delete deleting (repeated)":  {StateDeleting, streaming, SnapshotInitial, ActionDelete, StateDeleting},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := Stream{ID: "s", State: tc.from, Status: Status{State: tc.from, LastError: "boom", SnapshotGTID: "0-1-7"},
				Checkpoint: tc.cp, Spec: Spec{Tables: []string{"app.*"}, Snapshot: tc.snap}}
			before := s
			err := s.Apply(tc.action, now)
			if tc.want == "" {
				var te *TransitionError
				if !errors.As(err, &te) || !errors.Is(err, ErrConflict) || te.From != tc.from || te.Action != tc.action {
					t.Fatalf("err = %v, want a TransitionError from %s", err, tc.from)
				}
				if s.State != before.State || s.Checkpoint.GTID != before.Checkpoint.GTID {
					t.Fatalf("a refused transition changed the stream: %+v", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.State != tc.want || s.Status.State != tc.want {
				t.Fatalf("state %s (status %s), want %s", s.State, s.Status.State, tc.want)
			}
			switch tc.action {
			case ActionResnapshot:
				if s.Checkpoint.GTID != "" || s.Checkpoint.Snapshot != nil || s.Checkpoint.Events != 0 ||
					s.Spec.Snapshot != SnapshotInitial || s.Status.LastError != "" || s.Status.SnapshotGTID != "" || !s.SnapshotPending() {
					t.Fatalf("resnapshot kept state: %+v", s)
				}
			case ActionResume:
				if (s.Status.LastError != "") != (tc.from == tc.want) || s.Checkpoint.GTID != tc.cp.GTID {
					t.Fatalf("resume: %+v", s)
				}
			default:
				if s.Checkpoint.GTID != tc.cp.GTID {
					t.Fatalf("%s lost the checkpoint: %+v", tc.action, s)
				}
			}
			if !s.UpdatedAt.Equal(now) && tc.from != tc.want {
				t.Fatalf("updated_at %v", s.UpdatedAt)
			}
		})
	}
	s := Stream{State: StateStreaming}
	if err := s.Apply("explode", now); err == nil || errors.Is(err, ErrConflict) {
		t.Fatalf("unknown action: %v", err)
	}
}
