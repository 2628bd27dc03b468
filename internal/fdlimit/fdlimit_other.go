//go:build !unix

package fdlimit

func limit() int { return 0 }
