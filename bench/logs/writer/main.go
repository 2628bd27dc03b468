// Command writer is bench/logs's child: it writes lines of -size bytes to
// stdout, one write(2) each (or -buffer bytes at a time), as fast as it can or -rate lines a second,
// for -duration, timing every write, and reports on -report (a file, not
// stdout, which is being measured) as one JSON object: lines written,
// seconds, the write latency's percentiles, and how often the pipe was
// full (the reader behind: the only way vigil can make it wait) and for
// how long in all.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	size := flag.Int("size", 100, "bytes per line, newline included")
	rate := flag.Int("rate", 0, "lines a second (0: as fast as it can)")
	duration := flag.Duration("duration", 10*time.Second, "how long to write")
	report := flag.String("report", "", "where to write the report")
	buffer := flag.Int("buffer", 0, "gather lines into writes of this many bytes, as stdio does on a pipe (0: one write per line)")
	flag.Parse()
	line := make([]byte, *size)
	for i := range line {
		line[i] = 'x'
	}
	line[len(line)-1] = '\n'
	var maxLat time.Duration
	// Latencies in buckets of 100 ns, up to 100 ms.
	const bucket = 100 * time.Nanosecond
	hist := make([]uint64, 1000001)
	var pending []byte
	// stdout is made non-blocking, so that a full pipe (the reader behind)
	// shows as EAGAIN: counted, then waited for with poll(2).
	if err := unix.SetNonblock(1, true); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
	var fullPipe uint64
	var waited time.Duration
	write := func(p []byte) {
		t0 := time.Now()
		for len(p) > 0 {
			n, err := unix.Write(1, p)
			if err == unix.EAGAIN {
				fullPipe++
				w0 := time.Now()
				fds := []unix.PollFd{{Fd: 1, Events: unix.POLLOUT}}
				for {
					if _, err := unix.Poll(fds, -1); err != unix.EINTR {
						break
					}
				}
				waited += time.Since(w0)
				continue
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "writer:", err)
				os.Exit(1)
			}
			p = p[n:]
		}
		lat := time.Since(t0)
		hist[min(int(lat/bucket), len(hist)-1)]++
		maxLat = max(maxLat, lat)
	}
	var n uint64
	start := time.Now()
	end := start.Add(*duration)
	next := start
	var interval time.Duration
	if *rate > 0 {
		interval = time.Second / time.Duration(*rate)
	}
	for {
		now := time.Now()
		if now.After(end) {
			break
		}
		if interval > 0 {
			if wait := next.Sub(now); wait > 0 {
				time.Sleep(wait)
			}
			next = next.Add(interval)
		}
		s := strconv.AppendUint(line[:0], n, 10)
		line[len(s)] = ' '
		n++
		if *buffer <= 0 {
			write(line)
			continue
		}
		pending = append(pending, line...)
		if len(pending)+len(line) > *buffer {
			write(pending)
			pending = pending[:0]
		}
	}
	if len(pending) > 0 {
		write(pending)
	}
	elapsed := time.Since(start)
	var writes uint64
	for _, c := range hist {
		writes += c
	}
	pct := func(p float64) float64 { // µs
		target := uint64(float64(writes) * p)
		var sum uint64
		for i, c := range hist {
			sum += c
			if sum > target {
				return float64(i) * float64(bucket) / 1e3
			}
		}
		return float64(len(hist)-1) * float64(bucket) / 1e3
	}
	var over1ms uint64
	for _, c := range hist[int(time.Millisecond/bucket):] {
		over1ms += c
	}
	r := map[string]any{
		"lines": n, "writes": writes, "seconds": elapsed.Seconds(),
		"p50_us": pct(0.5), "p99_us": pct(0.99), "p999_us": pct(0.999), "max_us": float64(maxLat) / 1e3,
		"over_1ms": over1ms, "full_pipe": fullPipe, "waited_us": float64(waited) / 1e3,
	}
	b, _ := json.Marshal(r)
	if err := os.WriteFile(*report, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
}
