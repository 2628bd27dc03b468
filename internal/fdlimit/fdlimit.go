// Package fdlimit tells how many descriptors this process may have open.
package fdlimit

// Max is the most descriptors this process may have open (RLIMIT_NOFILE),
// 0 if there is no limit or it cannot be read. The Go runtime raises the
// soft limit to the hard one when a program starts (and gives the
// processes it starts the soft one they would have had), so the hard
// limit is the one in force.
func Max() int { return limit() }
