package paging

import (
	"net/url"
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
