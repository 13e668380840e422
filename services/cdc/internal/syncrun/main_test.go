package syncrun

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/canopy-platform/canopy/libs/enginetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	enginetest.CleanupTemplate()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left:", err)
			code = 1
		}
	}
	os.Exit(code)
}
