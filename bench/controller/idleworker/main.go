// Command idleworker is the small idle Go worker of bench/controller: it
// says {"ready":true} on the readiness pipe named by NOTIFY_PIPE (fd 3
// under vigil) and then blocks until SIGINT or SIGTERM.
//
// With VIGIL_BENCH_READY_FIFO set to the path of a FIFO, it writes one line
// "PID NANOSECONDS\n" there right after its ready message was written,
// NANOSECONDS being CLOCK_MONOTONIC: the bench reads the moment of
// readiness from the worker itself, without asking the controller anything.
//
// With VIGIL_BENCH_REGISTER=1 and VIGIL_SUPERVISOR_SOCKET set (a
// supervised service), it then connects to the supervisor and registers
// ({"process_id", "name", "instance"} from VIGIL_SERVICE and
// VIGIL_INSTANCE), and holds the connection without reading it again:
// bench/scale measures what the controller and the supervisor keep per
// registered worker.
//
// It imports nothing of vigil, nor net, to stay small: its start-up (exec,
// the Go runtime, its few package inits) is the floor of every
// crash-to-ready figure, and the bench prints that floor.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// EnvReadyFIFO names the FIFO that receives the ready timestamps.
const EnvReadyFIFO = "VIGIL_BENCH_READY_FIFO"

// EnvRegister, set to 1, makes the worker register with the supervisor
// once ready.
const EnvRegister = "VIGIL_BENCH_REGISTER"

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
	if os.Getenv(EnvRegister) == "1" {
		if path := os.Getenv("VIGIL_SUPERVISOR_SOCKET"); path != "" {
			fd, err := register(path)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
		}
	}
	<-stop
	return nil
}

// register connects to the supervisor's socket (retrying for 10 s while
// it is not up), registers, and returns the connection's descriptor once
// the reply has come.
func register(path string) (int, error) {
	instance, err := strconv.Atoi(os.Getenv("VIGIL_INSTANCE"))
	if err != nil {
		instance = 0
	}
	line := fmt.Sprintf(`{"id":2,"do":"register","state":{"process_id":%d,"name":%q,"instance":%d}}`+"\n",
		os.Getpid(), os.Getenv("VIGIL_SERVICE"), instance)
	deadline := time.Now().Add(10 * time.Second)
	for {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("socket: %w", err)
		}
		if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err == nil {
			if err = writeAll(fd, []byte(line)); err == nil {
				err = readLine(fd)
			}
			if err == nil {
				return fd, nil
			}
		}
		unix.Close(fd)
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("register with %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readLine reads until a newline: the register reply.
func readLine(fd int) error {
	var buf [512]byte
	for {
		n, err := unix.Read(fd, buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			return fmt.Errorf("connection closed before the reply")
		}
		for _, c := range buf[:n] {
			if c == '\n' {
				return nil
			}
		}
	}
}
