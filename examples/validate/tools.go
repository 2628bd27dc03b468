//go:build tools

package validate

// promtool is run by the tests (go run): required here so that go.mod and
// go.sum hold what it needs.
import _ "github.com/prometheus/prometheus/cmd/promtool"
