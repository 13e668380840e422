package paging

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	type cur struct {
		A string `json:"a"`
	}
	var c cur
	limit, has, err := Parse(url.Values{}, &c)
	require.NoError(t, err)
	require.Equal(t, DefaultLimit, limit)
	require.False(t, has)

	q := url.Values{"limit": {"7"}, "cursor": {Encode(cur{A: "x"})}}
	limit, has, err = Parse(q, &c)
	require.NoError(t, err)
	require.Equal(t, 7, limit)
	require.True(t, has)
	require.Equal(t, "x", c.A)

	for name, q := range map[string]url.Values{
		"limit":  {"limit": {"0"}},
		"cursor": {"cursor": {"!!"}},
	} {
		_, _, err := Parse(q, &c)
		var fe *FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, name, fe.Field)
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		name    string
		q       url.Values
		limit   int
		key     string
		errWhat string
	}{
		{name: "none", q: url.Values{}, limit: DefaultLimit},
		{name: "round trip", q: url.Values{"limit": {"3"}, "cursor": {EncodeKey("acme")}}, limit: 3, key: "acme"},
		{name: "old gateway cursor", q: url.Values{"cursor": {"YWNtZQ"}}, limit: DefaultLimit, key: "acme"},
		{name: "limit too big", q: url.Values{"limit": {"501"}}, errWhat: "limit"},
		{name: "limit not a number", q: url.Values{"limit": {"x"}}, errWhat: "limit"},
		{name: "not base64", q: url.Values{"cursor": {"!!"}}, errWhat: "cursor"},
		{name: "key too long", q: url.Values{"cursor": {EncodeKey(strings.Repeat("k", MaxKeyLen+1))}}, errWhat: "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit, key, err := ParseKey(tt.q)
			if tt.errWhat != "" {
				var fe *FieldError
				require.ErrorAs(t, err, &fe)
				require.ErrorIs(t, err, ErrInvalid)
				require.Equal(t, tt.errWhat, fe.Field)
				p := Problem(err)
				require.Equal(t, 400, p.Status)
				require.Equal(t, tt.errWhat, p.Errors[0].Field)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.limit, limit)
			require.Equal(t, tt.key, key)
		})
	}
}

func TestParseRaw(t *testing.T) {
	limit, cur, err := ParseRaw(url.Values{"cursor": {"h-1"}}, 100)
	require.NoError(t, err)
	require.Equal(t, 100, limit)
	require.Equal(t, "h-1", cur)
	_, _, err = ParseRaw(url.Values{"cursor": {strings.Repeat("x", MaxCursorLen+1)}}, 100)
	require.ErrorIs(t, err, ErrInvalid)
	_, _, err = ParseRaw(url.Values{"limit": {"0"}}, 100)
	require.ErrorIs(t, err, ErrInvalid)
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name  string
		items []int
		page  []int
		more  bool
	}{
		{"empty", nil, nil, false},
		{"short", []int{1}, []int{1}, false},
		{"exact", []int{1, 2}, []int{1, 2}, false},
		{"one more", []int{1, 2, 3}, []int{1, 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, more := Split(tt.items, 2)
			require.Equal(t, tt.page, page)
			require.Equal(t, tt.more, more)
		})
	}
}

func TestKeyPage(t *testing.T) {
	key := func(s string) string { return s }
	upper := func(s string) string { return strings.ToUpper(s) }
	items, next := KeyPage([]string{"a", "b", "c"}, 2, key, upper)
	if len(items) != 2 || items[0] != "A" || items[1] != "B" || next != EncodeKey("b") {
		t.Fatalf("a full page: got %v, next %q", items, next)
	}
	items, next = KeyPage([]string{"a"}, 2, key, upper)
	if len(items) != 1 || next != "" {
		t.Fatalf("the last page: got %v, next %q", items, next)
	}
	if items, _ = KeyPage(nil, 2, key, upper); items == nil || len(items) != 0 {
		t.Fatalf("an empty page must be an empty list (JSON []), got %#v", items)
	}
}
