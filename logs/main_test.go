package logs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary re-executes itself as a child: with LOGS_TEST_HELPER
// set, TestMain runs that helper instead of the tests.
const helperEnv = "LOGS_TEST_HELPER"

var helpers = map[string]func(args []string) int{
	"script":     helperScript,
	"flood":      helperFlood,
	"grandchild": helperGrandchild,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// helperScript writes its arguments in order: "out:TEXT" a line to stdout,
// "err:TEXT" to stderr, "raw:TEXT" TEXT to stdout with no newline,
// "long:N" a line of N bytes to stdout, "sleep:DURATION", "wait" reads a
// line from stdin first.
func helperScript(args []string) int {
	in := bufio.NewReader(os.Stdin)
	for _, a := range args {
		kind, text, _ := strings.Cut(a, ":")
		switch kind {
		case "out":
			fmt.Fprintln(os.Stdout, text)
		case "err":
			fmt.Fprintln(os.Stderr, text)
		case "raw":
			fmt.Fprint(os.Stdout, text)
		case "long":
			n, _ := strconv.Atoi(text)
			b := make([]byte, n+1)
			for i := range n {
				b[i] = 'a' + byte(i%26)
			}
			b[n] = '\n'
			os.Stdout.Write(b)
		case "sleep":
			d, _ := time.ParseDuration(text)
			time.Sleep(d)
		case "wait":
			in.ReadString('\n')
		}
	}
	return 0
}

// helperFlood writes N numbered lines of SIZE bytes to stdout, one write
// each, as fast as it can.
func helperFlood(args []string) int {
	n, _ := strconv.Atoi(args[0])
	size, _ := strconv.Atoi(args[1])
	line := make([]byte, size)
	for i := range line {
		line[i] = 'x'
	}
	line[size-1] = '\n'
	for i := range n {
		s := strconv.Itoa(i)
		copy(line, s)
		line[len(s)] = ' '
		if _, err := os.Stdout.Write(line); err != nil {
			return 1
		}
	}
	return 0
}

// helperGrandchild starts a grandchild that keeps stdout open (sleeping),
// writes "started PID" and exits.
func helperGrandchild(args []string) int {
	cmd := exec.Command("sleep", "60")
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("started %d\n", cmd.Process.Pid)
	return 0
}

// child is a helper process whose stdout and stderr are pipes.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr *os.File // the read ends
	stdin          *os.File // the write end
}

// testPipe returns a new pipe's ends.
func testPipe(t testing.TB) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// startChild starts helper name with args; its output pipes' read ends are
// for a capture.
func startChild(t *testing.T, name string, args ...string) *child {
	t.Helper()
	outR, outW := testPipe(t)
	errR, errW := testPipe(t)
	inR, inW := testPipe(t)
	cmd := exec.Command(os.Args[0], args...)
	// GORACE: a -race helper would sleep a second at its exit.
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "GORACE=atexit_sleep_ms=0")
	cmd.Stdout, cmd.Stderr, cmd.Stdin = outW, errW, inR
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	inR.Close()
	c := &child{cmd: cmd, stdout: outR, stderr: errR, stdin: inW}
	t.Cleanup(func() {
		inW.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

// id is the child's identity as instance n of service.
func (c *child) id(service string, n int) Identity {
	return Identity{Service: service, Instance: n, PID: c.cmd.Process.Pid}
}

// wait waits for the child's exit and fails the test if it failed.
func (c *child) wait(t *testing.T) {
	t.Helper()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
}
