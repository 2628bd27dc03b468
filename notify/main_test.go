package notify

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// helperEnv names the helper command a re-executed test binary plays.
const helperEnv = "VIGIL_NOTIFY_TEST_HELPER"

// helpers are the commands the test binary plays when re-executed, as in
// os/exec's tests; OS-specific test files register theirs in init.
var helpers = map[string]func() int{}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h())
	}
	goleak.VerifyTestMain(m)
}
