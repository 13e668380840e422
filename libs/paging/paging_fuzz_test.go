package paging

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

type fuzzCursor struct {
	Name string    `json:"n"`
	T    time.Time `json:"t"`
}

// FuzzParse feeds arbitrary limit and cursor parameters to Parse: it never
// panics, every refusal is a *FieldError naming limit or cursor, and a cursor
// Encode issued parses back to the same value.
func FuzzParse(f *testing.F) {
	f.Add("50", Encode(fuzzCursor{Name: "mysql-ha", T: time.Unix(1, 0).UTC()}))
	f.Add("", "e30")
	f.Add("0", "not base64!")
	f.Add("501", "bnVsbA")
	f.Add("1", `eyJ0IjoieWVzdGVyZGF5In0`)
	f.Fuzz(func(t *testing.T, limit, cursor string) {
		q := url.Values{"limit": {limit}, "cursor": {cursor}}
		var c fuzzCursor
		n, has, err := Parse(q, &c)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || (fe.Field != "limit" && fe.Field != "cursor") {
				t.Fatalf("Parse error %v is not a limit or cursor field error", err)
			}
			return
		}
		if n < 1 || n > MaxLimit || has != (cursor != "") {
			t.Fatalf("Parse = %d, %v for limit %q cursor %q", n, has, limit, cursor)
		}
		if has {
			var back fuzzCursor
			if _, _, err := Parse(url.Values{"cursor": {Encode(c)}}, &back); err != nil || back.Name != c.Name || !back.T.Equal(c.T) {
				t.Fatalf("cursor %+v does not round-trip: %+v, %v", c, back, err)
			}
		}
	})
}
