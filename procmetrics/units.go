package procmetrics

import (
	"math"
	"os"
)

// ticksPerSecond is USER_HZ, the unit of the clock-tick fields of
// /proc/PID/stat. The kernel exports 100 on every architecture Go supports
// (sysconf(_SC_CLK_TCK) is a constant in the C libraries), so it is not read.
const ticksPerSecond = 100

// pageSize is the unit of /proc/PID/stat's rss and of /proc/PID/statm.
var pageSize = uint64(os.Getpagesize())

// ticksToSeconds converts clock ticks to seconds.
func ticksToSeconds(t uint64) float64 { return float64(t) / ticksPerSecond }

// pagesToBytes converts a page count to bytes.
func pagesToBytes(p uint64) uint64 { return p * pageSize }

// kibToBytes converts the "kB" (KiB) values of smaps_rollup and meminfo to bytes.
func kibToBytes(k uint64) uint64 { return k * 1024 }

// round2 rounds to two decimals: the resolution of clock ticks, so that
// serialised seconds read 2.7, not 2.7000000000000455.
func round2(x float64) float64 { return math.Round(x*100) / 100 }
