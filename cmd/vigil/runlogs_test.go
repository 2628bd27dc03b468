package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunLogs: through vigil run, the output of the children is kept
// apart by stream, a crashed worker's last line is in --previous, the
// files rotate at their size and keep their count, and the JSON console
// parses line by line.
func TestRunLogs(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "vigil.toml")
	socket := filepath.Join(dir, "supervisor.ipc")
	toml := `
[logs]
dir = "logs"
max_size = "4KiB"
keep = 2
format = "json"

[services.talk]
command = ["sh", "-c", "echo out-line; echo err-line >&2; i=0; while [ $i -lt 300 ]; do echo filler-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; exec sleep 300"]
readiness = "started"
supervised = false
graceful_stop = "1s"

[services.crash]
command = ["sh", "-c", "echo last words of $$; sleep 0.3; exit 3"]
readiness = "started"
supervised = false
restart_delay = "1s"
stable_after = "1s"
`
	if err := os.WriteFile(config, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vigilBin, "run", "-c", config)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	console := make(chan string, 10000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			console <- sc.Text()
		}
		close(console)
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("vigil run's log:\n%s", stderr.String())
		}
	}()
	logs := func(args ...string) string {
		out, errOut, code := opRun(t, nil, append([]string{"logs", "--socket", socket}, args...)...)
		if code != 0 {
			t.Fatalf("vigil logs %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	waitUntil(t, "talk's lines kept", func() bool {
		out, _, code := opRun(t, nil, "logs", "--socket", socket, "talk", "-n", "0")
		return code == 0 && strings.Contains(out, "filler-299")
	})
	if out := logs("talk", "--stream", "stderr"); !strings.Contains(out, "err-line") || strings.Contains(out, "out-line") {
		t.Errorf("vigil logs talk --stream stderr:\n%s", out)
	}
	if out := logs("talk", "--stream", "stdout", "-n", "0"); !strings.Contains(out, "out-line") || strings.Contains(out, "err-line") {
		t.Errorf("vigil logs talk --stream stdout: no out-line, or err-line in it")
	}

	// The crash worker has restarted: its previous process's last words.
	var previous string
	waitUntil(t, "crash restarted and its previous process's lines kept", func() bool {
		previous = logs("crash", "--previous")
		return strings.Contains(previous, "last words of ")
	})
	current := logs("crash")
	if previous == current {
		t.Errorf("--previous shows the current process:\n%s", previous)
	}

	// The files: talk.0.stdout.log rotated, two old ones kept.
	base := filepath.Join(dir, "logs", "talk.0.stdout.log")
	waitUntil(t, "rotated files", func() bool {
		_, err := os.Stat(base + ".2")
		return err == nil
	})
	if _, err := os.Stat(base + ".3"); err == nil {
		t.Errorf("%s.3 kept: keep = 2", base)
	}
	for _, f := range []string{base, base + ".1", base + ".2"} {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 4<<10+200 {
			t.Errorf("%s: %v, %d bytes: want at most about 4 KiB", f, err, fi.Size())
		}
	}
	// Files are written a second at a time (a line reaches its file at
	// most a second after it was read).
	waitUntil(t, "err-line in talk.0.stderr.log", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "logs", "talk.0.stderr.log"))
		return strings.Contains(string(b), "err-line")
	})

	// The console in JSON: every line of the children's output parses.
	deadline := time.After(10 * time.Second)
	seen := 0
	for seen < 50 {
		select {
		case line, ok := <-console:
			if !ok {
				t.Fatal("vigil run's stdout ended")
			}
			var v struct {
				Time     time.Time `json:"time"`
				Service  string    `json:"service"`
				Instance *int      `json:"instance"`
				PID      int       `json:"pid"`
				Stream   string    `json:"stream"`
				Line     *string   `json:"line"`
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil || v.Service == "" || v.Instance == nil || v.Line == nil || v.Stream == "" || v.Time.IsZero() {
				t.Fatalf("a console line is not one JSON object of a line: %q (%v)", line, err)
			}
			seen++
		case <-deadline:
			t.Fatalf("only %d console lines in 10s", seen)
		}
	}
}
