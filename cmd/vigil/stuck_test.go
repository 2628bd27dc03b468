package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	// chatty-worker: says ready, then writes lines to stdout as fast as it
	// can until stopped.
	helpers["chatty-worker"] = func(args []string) int {
		_, _ = os.NewFile(3, "notify").Write([]byte(`{"ready":true}` + "\n"))
		line := []byte(strings.Repeat("x", 100) + "\n")
		for {
			if _, err := os.Stdout.Write(line); err != nil {
				return 0
			}
		}
	}
}

// TestRunExitsWithStuckOutput is defect 2 of the process core: with vigil
// run's output on a FIFO nobody reads, SIGTERM must still end it within
// graceful_stop + 1 s (the children stop; what cannot be written is
// abandoned and counted).
func TestRunExitsWithStuckOutput(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "vigil.toml")
	err = os.WriteFile(config, []byte(fmt.Sprintf(`
[services.chatty]
command = [%q]
count = 2
graceful_stop = "1s"
supervised = false
env = { %s = "chatty-worker", GORACE = "atexit_sleep_ms=0" }
`, exe, helperEnv)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "out.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened for reading and writing so that opening does not wait for a
	// reader; nothing ever reads it.
	out, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(vigilBin, "run", "-c", config)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Long enough for the workers to fill the FIFO and vigil's queue.
	time.Sleep(2 * time.Second)
	select {
	case err := <-exited:
		t.Fatalf("vigil run exited early: %v", err)
	default:
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Logf("vigil run exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(8 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("vigil run still alive 8s after SIGTERM with its output stuck (graceful_stop is 1s)")
	}
}
