package store_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a relay, pool or driver goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
