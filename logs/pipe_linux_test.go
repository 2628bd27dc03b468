//go:build linux

package logs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/testutil"
)

// pipeCapacity is a pipe's capacity, read through either of its ends.
func pipeCapacity(t testing.TB, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	if cerr := rc.Control(func(fd uintptr) { size, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	return size
}

// A capture grows a pipe (to pipeSize) only once its child writes to it:
// a quiet child's pipes stay as the kernel made them, and take nothing of
// the user's share of pipe memory.
func TestPipesGrowOnceWritten(t *testing.T) {
	for _, noPoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPoll=%v", noPoll), func(t *testing.T) {
			h := newHub(t, Options{noPoll: noPoll})
			outR, outW := testPipe(t)
			errR, errW := testPipe(t)
			defer outW.Close()
			defer errW.Close()
			before := pipeCapacity(t, outW)
			if before >= pipeSize {
				t.Skipf("a new pipe holds %d bytes here, as much as a capture asks for", before)
			}
			c := h.Capture(Identity{Service: "web", PID: os.Getpid()}, outR, errR)
			if got := pipeCapacity(t, outW); got != before {
				t.Errorf("stdout's pipe, nothing written yet: %d bytes, want the %d it had", got, before)
			}
			if _, err := outW.WriteString("hello\n"); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(h.Lines(Query{})) == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := texts(h.Lines(Query{})); len(got) != 1 || got[0] != "hello" {
				t.Fatalf("lines: %q", got)
			}
			if got := pipeCapacity(t, outW); got != pipeSize {
				t.Errorf("stdout's pipe, written to: %d bytes, want %d", got, pipeSize)
			}
			if got := pipeCapacity(t, errW); got != before {
				t.Errorf("stderr's pipe, never written to: %d bytes, want the %d it had", got, before)
			}
			outW.Close()
			errW.Close()
			waitDone(t, c)
		})
	}
}

// shareCaptures is how many children's pipes the share helper captures:
// 200 pipes, which grown to 1 MiB each would hold 51,200 pages, past the
// default share of an unprivileged user (16,384).
const shareCaptures = 100

func init() { helpers["pipeshare"] = helperPipeShare }

// helperPipeShare captures shareCaptures pairs of pipes, writes a line to
// every stdout pipe if args[0] is "chatty" (none if "quiet") and waits
// until the lines are read, then prints how many pipes were grown, and
// the smallest capacity of 32 new pipes.
func helperPipeShare(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := New(Options{Settings: quiet})
	var outs, writers []*os.File
	var captures []*Capture
	for i := range shareCaptures {
		outR, outW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		outs, writers = append(outs, outW), append(writers, outW, errW)
		captures = append(captures, h.Capture(Identity{Service: "w", Instance: i, PID: os.Getpid()}, outR, errR))
	}
	if args[0] == "chatty" {
		for _, w := range outs {
			if _, err := w.WriteString("hello\n"); err != nil {
				return fail(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(h.Lines(Query{})) < shareCaptures {
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("%d lines read of %d", len(h.Lines(Query{})), shareCaptures))
			}
			time.Sleep(time.Millisecond)
		}
	}
	grown := 0
	for _, w := range writers {
		if n, _ := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0); n == pipeSize {
			grown++
		}
	}
	// The user's next pipes (the next children's, the workers' own).
	size := -1
	for range 32 {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		n, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
		if err != nil {
			return fail(err)
		}
		if size < 0 || n < size {
			size = n
		}
		defer r.Close()
		defer w.Close()
	}
	fmt.Println(grown, size)
	for _, f := range writers {
		f.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range captures {
		if err := c.Wait(ctx); err != nil {
			return fail(err)
		}
	}
	if err := h.Close(ctx); err != nil {
		return fail(err)
	}
	if !h.pipes.take(0) || h.pipes.left.Load() != userPipeShare() {
		return fail(fmt.Errorf("%d bytes of the share left once every pipe is closed, want %d", h.pipes.left.Load(), userPipeShare()))
	}
	return 0
}

// An unprivileged vigil with many children leaves its user's other pipes
// their full size: quiet children's pipes are never grown, and those
// written to only within half the user's share of pipe memory
// (/proc/sys/fs/pipe-user-pages-soft), past which the kernel makes every
// new pipe of that user 8 KiB and refuses to grow any.
func TestPipesLeaveTheUsersShare(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/pipe-user-pages-soft")
	if err != nil {
		t.Skip(err)
	}
	soft, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if soft == 0 || soft >= 2*shareCaptures*pipeSize/os.Getpagesize() {
		t.Skipf("pipe-user-pages-soft is %d: %d grown pipes would not reach it", soft, 2*shareCaptures)
	}
	_, exe := testutil.SharedExecutable(t)
	r, w := testPipe(t)
	want := pipeCapacity(t, w) // a new pipe's capacity, for a user within the share
	r.Close()
	w.Close()

	for _, load := range []string{"quiet", "chatty"} {
		t.Run(load, func(t *testing.T) {
			cmd := exec.Command(exe, load)
			cmd.Env = append(os.Environ(), helperEnv+"=pipeshare", "GORACE=atexit_sleep_ms=0")
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testutil.OtherUID, Gid: testutil.OtherUID}}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			var grown, size int
			if _, err := fmt.Sscan(string(out), &grown, &size); err != nil {
				t.Fatalf("helper: %q: %v", out, err)
			}
			t.Logf("%d pipes grown; the smallest of 32 new pipes holds %d bytes", grown, size)
			if size != want {
				t.Errorf("new pipes of uid %d after %d %s captures: one of %d bytes, want %d (the user's share was taken)", testutil.OtherUID, shareCaptures, load, size, want)
			}
			switch {
			case load == "quiet" && grown != 0:
				t.Errorf("%d pipes grown, none written to", grown)
			case load == "chatty" && (grown == 0 || grown >= shareCaptures):
				t.Errorf("%d pipes of the %d written to grown: want some, within half the share (%d pages)", grown, shareCaptures, soft/2)
			}
		})
	}
}

// Close waits for the pipes' reader once every capture has ended (no
// goroutine or descriptor of the hub left), and does not wait for it while
// a capture goes on.
func TestCloseEndsTheReader(t *testing.T) {
	for range 20 {
		h := New(Options{Settings: quiet})
		ch := startChild(t, "script", "out:one")
		c := h.Capture(ch.id("web", 0), ch.stdout, ch.stderr)
		ch.wait(t)
		waitDone(t, c)
		closeHub(t, h, 10*time.Second)
		h.poll.mu.Lock()
		running := h.poll.running
		h.poll.mu.Unlock()
		if running {
			t.Fatal("the hub's reader still runs after Close")
		}
	}

	h := New(Options{Settings: quiet})
	ch := startChild(t, "script", "out:one", "wait") // until its stdin is closed
	c := h.Capture(ch.id("web", 1), ch.stdout, ch.stderr)
	start := time.Now()
	closeHub(t, h, 10*time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a capture going on", d)
	}
	ch.stdin.Close()
	ch.wait(t)
	waitDone(t, c)
	if got := strings.Join(texts(h.Lines(Query{})), ","); got != "one" {
		t.Errorf("lines read after Close: %q", got)
	}
}
