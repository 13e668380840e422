package session

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	s, id, err := New("key1", now, time.Hour)
	require.NoError(t, err)
	require.True(t, ValidID(id))
	require.Len(t, id, 43, "256 bits, base64url without padding")
	require.Equal(t, Hash(id), s.IDHash)
	require.NotEqual(t, id, s.CSRFToken)
	require.Len(t, s.CSRFToken, 43)
	require.Equal(t, now.Truncate(time.Microsecond).Add(time.Hour), s.ExpiresAt)
	s2, id2, err := New("key1", now, time.Hour)
	require.NoError(t, err)
	require.NotEqual(t, id, id2)
	require.NotEqual(t, s.CSRFToken, s2.CSRFToken)

	_, _, err = New("", now, time.Hour)
	require.Error(t, err)
	_, _, err = New("k", now, 0)
	require.Error(t, err)
}

func TestExpiredAndCSRF(t *testing.T) {
	now := time.Now()
	s, _, err := New("k", now, time.Minute)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		at   time.Time
		want bool
	}{
		{"fresh", now, false},
		{"just before", s.ExpiresAt.Add(-time.Nanosecond), false},
		{"at expiry", s.ExpiresAt, true},
		{"after", s.ExpiresAt.Add(time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, s.Expired(tc.at)) })
	}
	require.True(t, s.CheckCSRF(s.CSRFToken))
	require.False(t, s.CheckCSRF(""))
	require.False(t, s.CheckCSRF(s.CSRFToken+"x"))
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"abcDEF012-_", true},
		{"", false},
		{"has space", false},
		{"semi;colon", false},
		{string(make([]byte, 65)), false},
	} {
		require.Equal(t, tc.want, ValidID(tc.id), "%q", tc.id)
	}
}

func TestMutating(t *testing.T) {
	for m, want := range map[string]bool{"GET": false, "HEAD": false, "OPTIONS": false, "POST": true, "PUT": true, "PATCH": true, "DELETE": true} {
		require.Equal(t, want, Mutating(m), m)
	}
}
