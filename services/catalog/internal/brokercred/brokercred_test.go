package brokercred

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIssueAndCheck(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, pw, err := Issue("cf-prod", "acme", "apikey:1", now)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(c.Username, "osb-"))
	require.Len(t, pw, 43)
	require.NotContains(t, c.PasswordHash, pw)
	require.NoError(t, c.Check(pw))
	require.ErrorIs(t, c.Check(pw+"x"), ErrBadCredentials)
	require.ErrorIs(t, c.Check(""), ErrBadCredentials)
	require.EqualValues(t, "acme", c.Tenant)

	c2, pw2, err := Issue("cf-prod", "", "apikey:1", now)
	require.NoError(t, err)
	require.NotEqual(t, pw, pw2)
	require.NotEqual(t, c.Username, c2.Username)

	c.RevokedAt = &now
	require.ErrorIs(t, c.Check(pw), ErrBadCredentials, "revoked credentials never authenticate")
}

func TestIssueValidation(t *testing.T) {
	tests := []struct{ name, cname, tenant, field string }{
		{"empty name", "", "", "name"},
		{"long name", strings.Repeat("a", 64), "", "name"},
		{"bad name", "Prod CF", "", "name"},
		{"bad tenant", "ok", "Not A Tenant", "tenant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Issue(tc.cname, tc.tenant, "", time.Now())
			var ve *ValidationError
			require.True(t, errors.As(err, &ve))
			require.Equal(t, tc.field, ve.Violations[0].Field)
		})
	}
}
