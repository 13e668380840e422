package cdcbench

import (
	"os"
	"testing"

	"github.com/canopy-platform/canopy/libs/enginetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	os.Exit(code)
}
