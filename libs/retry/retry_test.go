package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	fast := Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		policy    Policy
		failFirst int
		permanent bool
		wantCalls int
		wantErr   error
	}{
		{name: "succeeds after transient failures", policy: fast, failFirst: 3, wantCalls: 4},
		{name: "permanent stops at once", policy: fast, failFirst: 10, permanent: true, wantCalls: 1, wantErr: errBoom},
		{name: "max tries bounds attempts", policy: Policy{Initial: time.Millisecond, MaxTries: 2}, failFirst: 10, wantCalls: 2, wantErr: errBoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Do(context.Background(), tc.policy, func(context.Context) error {
				calls++
				if calls <= tc.failFirst {
					if tc.permanent {
						return Permanent(errBoom)
					}
					return errBoom
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Fatalf("calls = %d, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == nil && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.permanent && IsPermanent(err) {
				t.Fatalf("returned error still marked permanent")
			}
		})
	}
}

func TestDoStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Do(ctx, Policy{Initial: time.Hour}, func(context.Context) error {
		calls++
		cancel()
		return errors.New("transient")
	})
	if err == nil || calls != 1 {
		t.Fatalf("err = %v calls = %d; want an error after one call", err, calls)
	}
}
