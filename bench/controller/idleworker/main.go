// Command idleworker is the small idle Go worker of bench/controller: it
// says {"ready":true} on the readiness pipe named by NOTIFY_PIPE (fd 3
// under vigil) and then blocks until SIGINT or SIGTERM.
//
// With VIGIL_BENCH_READY_FIFO set to the path of a FIFO, it writes one line
// "PID NANOSECONDS\n" there right after its ready message was written,
// NANOSECONDS being CLOCK_MONOTONIC: the bench reads the moment of
// readiness from the worker itself, without asking the controller anything.
//
// It imports nothing of vigil, to stay small: its start-up (exec, the Go
// runtime, its few package inits) is the floor of every crash-to-ready
// figure, and the bench prints that floor.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// EnvReadyFIFO names the FIFO that receives the ready timestamps.
const EnvReadyFIFO = "VIGIL_BENCH_READY_FIFO"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "idleworker:", err)
		os.Exit(1)
	}
}

func run() error {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)

	var fifo *os.File
	if path := os.Getenv(EnvReadyFIFO); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvReadyFIFO, err)
		}
		defer f.Close()
		fifo = f
	}

	if v := os.Getenv("NOTIFY_PIPE"); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 0 {
			return fmt.Errorf("NOTIFY_PIPE=%q: not a file descriptor", v)
		}
		if _, err := unix.Write(fd, []byte("{\"ready\":true}\n")); err != nil {
			return fmt.Errorf("NOTIFY_PIPE=%d: %w", fd, err)
		}
	}
	if fifo != nil {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return err
		}
		// One write under PIPE_BUF: atomic among the workers sharing the FIFO.
		if _, err := fmt.Fprintf(fifo, "%d %d\n", os.Getpid(), ts.Nano()); err != nil {
			return fmt.Errorf("%s: %w", EnvReadyFIFO, err)
		}
	}
	<-stop
	return nil
}
