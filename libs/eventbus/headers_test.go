package eventbus

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/retry"
	"github.com/segmentio/kafka-go"
)

func TestClassOf(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{name: "plain error is retryable", err: base, want: ClassRetryable},
		{name: "permanent", err: Permanent(base), want: ClassPermanent},
		{name: "wrapped permanent", err: fmt.Errorf("reserve: %w", Permanent(base)), want: ClassPermanent},
		{name: "retry.Permanent counts as permanent", err: retry.Permanent(base), want: ClassPermanent},
		{name: "poison", err: Poison(base), want: ClassPoison},
		{name: "poison wins over permanent", err: Permanent(Poison(base)), want: ClassPoison},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClassOf(tc.err); got != tc.want {
				t.Fatalf("ClassOf = %s, want %s", got, tc.want)
			}
			if !errors.Is(tc.err, base) {
				t.Fatalf("marked error does not unwrap to its cause")
			}
		})
	}
	if Permanent(nil) != nil || Poison(nil) != nil {
		t.Fatal("marking nil must stay nil")
	}
}

func TestEventValidate(t *testing.T) {
	valid := Event{ID: "1", Type: "t", Source: "/s"}
	tests := []struct {
		name    string
		mutate  func(*Event)
		wantErr bool
	}{
		{name: "valid", mutate: func(*Event) {}},
		{name: "missing id", mutate: func(e *Event) { e.ID = "" }, wantErr: true},
		{name: "missing type", mutate: func(e *Event) { e.Type = "" }, wantErr: true},
		{name: "missing source", mutate: func(e *Event) { e.Source = "" }, wantErr: true},
		{name: "bad tenant", mutate: func(e *Event) { e.Tenant = "Not A Tenant" }, wantErr: true},
		{name: "reserved extension", mutate: func(e *Event) { e.Extensions = map[string]string{HeaderID: "x"} }, wantErr: true},
		{name: "extension ok", mutate: func(e *Event) { e.Extensions = map[string]string{"ce_region": "eu"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := valid
			tc.mutate(&e)
			err := e.validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("validate() = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error %v does not wrap ErrInvalidEvent", err)
			}
		})
	}
}

func TestDecodeEvent(t *testing.T) {
	h := func(kv ...string) []kafka.Header {
		var hs []kafka.Header
		for i := 0; i < len(kv); i += 2 {
			hs = append(hs, kafka.Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return hs
	}
	tests := []struct {
		name       string
		headers    []kafka.Header
		wantPoison bool
		check      func(t *testing.T, e Event)
	}{
		{
			name: "all attributes",
			headers: h(HeaderSpecVersion, "1.0", HeaderID, "id-1", HeaderType, "a.b.c", HeaderSource, "/src",
				HeaderTime, "2024-05-06T07:08:09.123456789Z", HeaderSubject, "inst-1", HeaderContentType, "application/json",
				HeaderTenant, "acme", HeaderTraceParent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				"ce_region", "eu"),
			check: func(t *testing.T, e Event) {
				want := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
				if e.ID != "id-1" || e.Type != "a.b.c" || e.Source != "/src" || e.Subject != "inst-1" ||
					e.Tenant != "acme" || !e.Time.Equal(want) || e.Extensions["ce_region"] != "eu" ||
					e.TraceParent != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" || e.Key != "k" {
					t.Fatalf("decoded %+v", e)
				}
			},
		},
		{name: "content type defaults to json", headers: h(HeaderID, "1", HeaderType, "t"),
			check: func(t *testing.T, e Event) {
				if e.ContentType != DefaultContentType || e.Extensions != nil {
					t.Fatalf("decoded %+v", e)
				}
			}},
		{name: "missing id", headers: h(HeaderType, "t"), wantPoison: true},
		{name: "missing type", headers: h(HeaderID, "1"), wantPoison: true},
		{name: "no headers at all", wantPoison: true},
		{name: "bad time", headers: h(HeaderID, "1", HeaderType, "t", HeaderTime, "yesterday"), wantPoison: true},
		{name: "unsupported spec version", headers: h(HeaderID, "1", HeaderType, "t", HeaderSpecVersion, "0.3"), wantPoison: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := kafka.Message{Topic: "t", Key: []byte("k"), Value: []byte("{}"), Headers: tc.headers}
			e, err := decodeEvent(&m)
			if tc.wantPoison {
				if ClassOf(err) != ClassPoison || err == nil {
					t.Fatalf("err = %v, want poison", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			tc.check(t, e)
		})
	}
}
