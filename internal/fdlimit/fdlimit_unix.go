//go:build unix

package fdlimit

import "golang.org/x/sys/unix"

func limit() int {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Max == unix.RLIM_INFINITY || rl.Max > 1<<30 {
		return 0
	}
	return int(rl.Max)
}
