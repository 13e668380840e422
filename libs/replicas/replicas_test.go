package replicas

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "one", in: "http://127.0.0.1:8082/", want: []string{"http://127.0.0.1:8082"}},
		{name: "list with blanks", in: " http://a:1 ,, https://b:2/base/ ", want: []string{"http://a:1", "https://b:2/base"}},
		{name: "bad entry", in: "http://a:1,b:2", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBadURL)) || !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

func TestRotationOrder(t *testing.T) {
	now := time.Unix(0, 0)
	r := NewRotation(time.Second)
	r.SetClock(func() time.Time { return now })
	urls := []string{"a", "b", "c"}
	first := r.Order(urls)
	second := r.Order(urls)
	if len(first) != 3 || first[1] != second[0] {
		t.Fatalf("orders %q then %q: want round robin", first, second)
	}
	if !r.SetAside("b") || r.SetAside("b") {
		t.Fatal("SetAside should report only the first change")
	}
	for range 3 {
		if o := r.Order(urls); o[2] != "b" {
			t.Fatalf("order %q: the set-aside replica must come last", o)
		}
	}
	now = now.Add(time.Second)
	seen := map[string]bool{}
	for range 3 {
		seen[r.Order(urls)[0]] = true
	}
	if !seen["b"] {
		t.Fatal("the replica did not come back after its time")
	}
	if got := r.Order([]string{"x"}); !reflect.DeepEqual(got, []string{"x"}) {
		t.Fatalf("single: %q", got)
	}
}

func TestRules(t *testing.T) {
	dial := fmt.Errorf("wrapped: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")})
	read := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	if !Refused(dial) || Refused(read) {
		t.Fatal("Refused: only a failed dial")
	}
	if !Repeatable(http.MethodGet, nil) || Repeatable(http.MethodPost, http.Header{}) ||
		!Repeatable(http.MethodPost, http.Header{"Idempotency-Key": {"k"}}) {
		t.Fatal("Repeatable: GET, HEAD and keyed requests only")
	}
	if !ShuttingDown(503) || !ShuttingDown(502) || ShuttingDown(500) {
		t.Fatal("ShuttingDown: 502 and 503")
	}
}
