package main

import (
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigild/vigil/internal/testutil"
)

// TestSuperviseUnderADescriptorLimit: with max_connections (10,000 by
// default) beyond what the supervisor's descriptors allow, connections
// past the limit used to wait in the listen queue, unanswered, while the
// supervisor logged a failed accept ten times a second and its monitors
// could open nothing. It serves at most the limit less a reserve, says so
// once, refuses the connections beyond at once (closed, as at
// max_connections), and answers again once some close.
func TestSuperviseUnderADescriptorLimit(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash for ulimit -n")
	}
	socket := opShortSocket(t)
	cmd := exec.Command(bash, "-c", `ulimit -n 160 && exec "$0" supervise --socket "$1"`, vigilBin, socket)
	var log testutil.Buffer
	cmd.Stderr = &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	opWaitSocket(t, socket)

	const held = 200
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range held {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	// The ones beyond what it serves are closed at once: a read ends.
	if closed := testutil.ClosedByPeer(conns, time.Second); closed < held-(160-64) {
		t.Errorf("%d of %d connections were closed; the supervisor serves at most %d under a limit of 160 descriptors:\n%s", closed, held, 160-64, log.String())
	}
	if n := strings.Count(log.String(), "more than this process's descriptors allow"); n != 1 {
		t.Errorf("said %d times that it serves fewer connections:\n%s", n, log.String())
	}
	if strings.Contains(log.String(), "out of file descriptors") {
		t.Errorf("ran out of descriptors:\n%s", log.String())
	}
	// Once they close, an operator's call is answered.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitUntil(t, "status answered once the connections closed", func() bool {
		_, _, code := opRun(t, nil, "status", "--socket", socket)
		return code == 0
	})
}
