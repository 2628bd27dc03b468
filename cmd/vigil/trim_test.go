package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binaryResident is how much of the vigil binary's read-only mappings
// pid has resident, in bytes.
func binaryResident(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	ours := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 6 && strings.Contains(fields[0], "-"):
			ours = fields[5] == vigilBin && !strings.Contains(fields[1], "w")
		case ours && len(fields) == 3 && fields[0] == "Rss:":
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			n += kb << 10
		}
	}
	return n
}

// The controller and the supervisor give back the pages of the binary that
// their start-up touched, a couple of seconds after they are up; so does
// the guard (not at once, when the run needs the CPU to start).
func TestRunTrimsItsDaemons(t *testing.T) {
	r := startRun(t, workerConfig(t, 2, ""))
	tr := r.waitTree("2 ready, registered workers", allUp(2))
	ctrl := r.cmd.Process.Pid
	sup := tr.pids(SupervisorService, "")[0]
	before := map[int]int64{ctrl: binaryResident(t, ctrl), sup: binaryResident(t, sup)}
	for pid, b := range before {
		if b < 4<<20 {
			t.Logf("pid %d has only %d KiB of the binary resident before its trim", pid, b>>10)
		}
	}
	deadline := time.Now().Add(trimAfter + 20*time.Second)
	for pid, b := range before {
		for {
			now := binaryResident(t, pid)
			if now < b/2 {
				t.Logf("pid %d: %d KiB of the binary resident, then %d KiB", pid, b>>10, now>>10)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still has %d KiB of the binary resident (%d KiB before)", pid, now>>10, b>>10)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The guard trimmed too, while it waits (it started before both).
	if g := binaryResident(t, guardOf(t, ctrl)); g > before[ctrl]/2 {
		t.Errorf("the guard has %d KiB of the binary resident; the controller had %d KiB before its trim", g>>10, before[ctrl]>>10)
	}
	// The controller collects garbage less often while its services start
	// only (see startGCPercent): once they have, GOGC is back.
	if os.Getenv("GOGC") == "" {
		stdout, stderr, code := opRun(t, nil, "dump", "metrics", "--socket", r.socket, strconv.Itoa(ctrl), "--output", "json")
		var dump struct{ Metrics map[string]any }
		if code != 0 || json.Unmarshal([]byte(stdout), &dump) != nil {
			t.Fatalf("the controller's metrics: exit %d: %s %s", code, stdout, stderr)
		}
		if got := dump.Metrics["/gc/gogc:percent"]; got != float64(100) {
			t.Errorf("the controller's GOGC once started: %v, want 100", got)
		}
	}
	// Trimmed, both still serve: a worker killed comes back.
	web := tr.pids("web", "")
	if err := syscall.Kill(web[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitTree("the killed worker's replacement", func(tr tree) bool {
		return allUp(2)(tr) && !slices.Contains(tr.pids("web", ""), web[0])
	})
}
