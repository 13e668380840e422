package syncjob

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	mysql := Target{Instance: "i2"}
	redis := Target{RedisInstance: "r1"}
	for name, c := range map[string]struct {
		spec   Spec
		fields []string
	}{
		"one-way mysql":        {Spec{SourceInstance: "i1", Tables: []string{"app.*", "shop.orders"}, Target: mysql}, nil},
		"two-way latest-wins":  {Spec{SourceInstance: "i1", Tables: []string{"app.t"}, Target: mysql, Direction: TwoWay, Conflict: LatestWins, Column: "updated_at"}, nil},
		"redis json with ttl":  {Spec{SourceInstance: "i1", Tables: []string{"app.t"}, Target: Target{RedisInstance: "r1", Format: FormatJSON, TTL: Duration(time.Hour), KeyPattern: "{db}:{table}:{pk}"}}, nil},
		"nothing":              {Spec{}, []string{"source_instance", "tables", "target"}},
		"bad patterns":         {Spec{SourceInstance: "i1", Tables: []string{"orders", "mysql.user", "_canopy_sync.watermarks"}, Target: mysql}, []string{"tables[0]", "tables[1]", "tables[2]"}},
		"target is source":     {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: Target{Instance: "i1"}}, []string{"target.instance"}},
		"both targets":         {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: Target{Instance: "i2", RedisInstance: "r1"}}, []string{"target"}},
		"redis fields on sql":  {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: Target{Instance: "i2", Format: FormatJSON}}, []string{"target"}},
		"latest-wins, no col":  {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: mysql, Conflict: LatestWins}, []string{"column"}},
		"column without need":  {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: mysql, Column: "x"}, []string{"column"}},
		"unknown enums":        {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: mysql, Conflict: "coin", Direction: "sideways", DDL: "ignore"}, []string{"conflict", "direction", "ddl"}},
		"two-way to redis":     {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: redis, Direction: TwoWay}, []string{"direction"}},
		"manual on redis":      {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: redis, Conflict: Manual}, []string{"conflict"}},
		"verify a redis":       {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: redis, VerifyEvery: Duration(time.Hour)}, []string{"verify_every"}},
		"redis pattern and fm": {Spec{SourceInstance: "i1", Tables: []string{"app.*"}, Target: Target{RedisInstance: "r1", KeyPattern: "{table}:{id}", Format: "xml", TTL: -1}}, []string{"target.format", "target.ttl", "target.key_pattern", "target.key_pattern"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := c.spec.WithDefaults().Validate()
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var ve *ValidationError
					if !errors.As(e, &ve) {
						t.Fatalf("%v is not a *ValidationError", e)
					}
					got = append(got, ve.Field)
				}
			}
			if !slices.Equal(got, c.fields) {
				t.Fatalf("fields %v, want %v (%v)", got, c.fields, err)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	s := Spec{SourceInstance: "i1", Tables: []string{"a.b"}, Target: Target{RedisInstance: "r1"}}.WithDefaults()
	if s.Conflict != SourceWins || s.Direction != OneWay || s.DDL != DDLReplay || s.InitialLoad == nil || !*s.InitialLoad ||
		s.Target.KeyPattern != DefaultKeyPattern || s.Target.Format != FormatHash {
		t.Fatalf("defaults = %+v", s)
	}
	no := false
	if s := (Spec{InitialLoad: &no, Target: Target{Instance: "i2"}}).WithDefaults(); *s.InitialLoad || s.Target.Format != "" {
		t.Fatalf("mysql defaults = %+v", s)
	}
}

func TestServerIDFor(t *testing.T) {
	a, b := ServerIDFor("job-a", 0), ServerIDFor("job-a", 1)
	if a&0xff000000 != ServerIDBase || b&0xff000000 != ServerIDBase || a == b || a != ServerIDFor("job-a", 0) {
		t.Fatalf("server ids %#x %#x", a, b)
	}
}

func TestTransitions(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		from State
		a    Action
		to   State
		err  bool
	}{
		{StateRunning, ActionPause, StatePaused, false},
		{StateLoading, ActionPause, StatePaused, false},
		{StatePaused, ActionPause, StatePaused, false},
		{StateFailed, ActionPause, StateFailed, true},
		{StateDeleting, ActionPause, StateDeleting, true},
		{StatePaused, ActionResume, StateRunning, false},
		{StateFailed, ActionResume, StateRunning, false},
		{StateLoading, ActionResume, StateLoading, false},
		{StateDeleting, ActionResume, StateDeleting, true},
		{StateRunning, ActionDelete, StateDeleting, false},
		{StateDeleting, ActionDelete, StateDeleting, false},
	} {
		j := Job{State: c.from, Status: Status{LastError: "boom"}}
		err := j.Apply(c.a, t0)
		if (err != nil) != c.err || (err != nil && !errors.Is(err, ErrConflict)) || j.State != c.to {
			t.Errorf("%s %s: state %s, err %v", c.a, c.from, j.State, err)
		}
		if c.a == ActionResume && !c.err && c.from != StateLoading && j.Status.LastError != "" {
			t.Errorf("resume from %s kept the last error", c.from)
		}
	}
	j := Job{State: StateRunning}
	if err := j.Apply("explode", t0); err == nil || errors.Is(err, ErrConflict) {
		t.Fatalf("unknown action: %v", err)
	}
}
