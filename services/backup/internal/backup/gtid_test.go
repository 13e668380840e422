package backup_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/services/backup/internal/backup"
)

func TestParseGTID(t *testing.T) {
	t.Parallel()
	g, err := backup.ParseGTID("0-1-42")
	require.NoError(t, err)
	require.Equal(t, backup.GTID{Domain: 0, ServerID: 1, Seq: 42}, g)
	require.Equal(t, "0-1-42", g.String())
	for _, bad := range []string{"", "0-1", "0-1-2-3", "a-1-2", "0-1--2", "4294967296-1-1"} {
		_, err := backup.ParseGTID(bad)
		require.ErrorIs(t, err, backup.ErrInvalid, bad)
	}
}

func TestParsePos(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "empty", in: "", want: ""},
		{name: "one domain", in: "0-1-42", want: "0-1-42"},
		{name: "domains sorted", in: "2-7-3, 0-1-42,1-1-9", want: "0-1-42,1-1-9,2-7-3"},
		{name: "multi-line as MariaDB prints it", in: "0-1-42,\n1-1-9", want: "0-1-42,1-1-9"},
		{name: "duplicate domain", in: "0-1-1,0-2-2", wantErr: true},
		{name: "garbage", in: "0-1-1,x", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := backup.ParsePos(tc.in)
			if tc.wantErr {
				require.ErrorIs(t, err, backup.ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, p.String())
		})
	}
}

func TestPosContainsAndAtOrAfter(t *testing.T) {
	t.Parallel()
	pos := func(s string) backup.Pos {
		p, err := backup.ParsePos(s)
		require.NoError(t, err)
		return p
	}
	gtid := func(s string) backup.GTID {
		g, err := backup.ParseGTID(s)
		require.NoError(t, err)
		return g
	}
	p := pos("0-1-42,1-7-3")
	require.True(t, p.Contains(gtid("0-1-42")))
	require.True(t, p.Contains(gtid("0-2-41")), "server id plays no part")
	require.False(t, p.Contains(gtid("0-1-43")))
	require.True(t, p.Contains(gtid("1-7-1")))
	require.False(t, p.Contains(gtid("2-1-1")), "unknown domain")

	tests := []struct {
		p, q string
		want bool
	}{
		{"0-1-42,1-7-3", "0-1-42", true},
		{"0-1-42,1-7-3", "0-1-42,1-7-3", true},
		{"0-1-42,1-7-3", "0-1-41,1-7-2", true},
		{"0-1-42,1-7-3", "0-1-43", false},
		{"0-1-42", "0-1-40,1-7-1", false},
		{"0-1-42", "", true},
		{"", "0-1-1", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, pos(tc.p).AtOrAfter(pos(tc.q)), "%s at or after %s", tc.p, tc.q)
	}
	require.True(t, pos("1-7-3,0-1-42").Equal(pos("0-1-42,1-7-3")))
}
