package gateway_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canopy-platform/canopy/libs/openapitest"
)

// validate checks a gateway response against the OpenAPI document.
func validate(t testing.TB, r response) {
	t.Helper()
	require.NoError(t, openapitest.MustLoad(t).Check(r.req, r.StatusCode, r.Header, r.Body))
}
