//go:build linux

package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/notify"
)

// The test binary re-executes itself as a child: with VIGIL_TEST_HELPER set,
// TestMain runs that helper instead of the tests (as os/exec's tests do).
const helperEnv = "VIGIL_TEST_HELPER"

var helpers = map[string]func(args []string) int{
	"ready":         helperReady,
	"silent":        helperSilent,
	"crash":         helperCrash,
	"ignore-stop":   helperIgnoreStop,
	"output":        helperOutput,
	"grandchild":    helperGrandchild,
	"controller":    helperController,
	"exit-on-ready": helperExitOnReady,
}

func init() {
	// Registered here to avoid an initialization cycle through helpers.
	helpers["idle-controller"] = helperIdleController
	helpers["mix-0"], helpers["mix-1"], helpers["mix-2"] = helperSilent, helperSilent, helperCrash
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
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

// helperSpec is a Spec whose children run the named helper.
func helperSpec(name, helper string, count int, env ...string) Spec {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return Spec{
		Name: name, Command: []string{exe}, Count: count, Restart: true,
		// atexit_sleep_ms=0: race-enabled helpers otherwise linger 1 s at exit.
		Env:          append([]string{helperEnv + "=" + helper, "GORACE=atexit_sleep_ms=0"}, env...),
		GracefulStop: 2 * time.Second,
		RestartDelay: 20 * time.Millisecond, RestartDelayMax: 200 * time.Millisecond,
		StableAfter: 5 * time.Second,
	}
}

// notifier opens the readiness pipe the container gave us.
func notifier() notify.Client {
	c, err := notify.New(nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		os.Exit(3)
	}
	return c
}

// waitStop blocks until SIGINT or SIGTERM, sending a heartbeat every
// HEARTBEAT (a duration) if set.
func waitStop(c notify.Client) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var tick <-chan time.Time
	if hb, err := time.ParseDuration(os.Getenv("HEARTBEAT")); err == nil {
		tick = time.Tick(hb)
	}
	for {
		select {
		case <-sigs:
			_ = c.Send(notify.Message{Stopping: true})
			return 0
		case <-tick:
			_ = notify.Healthy(c)
		}
	}
}

func helperReady([]string) int {
	c := notifier()
	if d, err := time.ParseDuration(os.Getenv("READY_DELAY")); err == nil {
		time.Sleep(d)
	}
	_ = notify.Ready(c, "serving")
	return waitStop(c)
}

func helperSilent([]string) int {
	return waitStop(notifier())
}

func helperCrash([]string) int {
	fmt.Println("crashing")
	return 1
}

func helperExitOnReady([]string) int {
	c := notifier()
	_ = notify.Ready(c, "")
	time.Sleep(50 * time.Millisecond)
	return 0
}

func helperIgnoreStop([]string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	c := notifier()
	_ = notify.Ready(c, "")
	select {}
}

func helperOutput([]string) int {
	c := notifier()
	n, _ := strconv.Atoi(os.Getenv("LINES"))
	w := bufio.NewWriter(os.Stdout)
	for i := range n {
		fmt.Fprintf(w, "line %d\n", i)
	}
	w.Flush()
	fmt.Fprintln(os.Stderr, "to stderr")
	fmt.Printf("I am %s.%s\n", os.Getenv(EnvService), os.Getenv(EnvInstance))
	_ = notify.Ready(c, "")
	return waitStop(c)
}

// helperGrandchild starts a grandchild (in its process group) that ignores
// SIGINT, writes its pid to PIDFILE, then is ready.
func helperGrandchild([]string) int {
	c := notifier()
	exe, _ := os.Executable()
	r, w, err := os.Pipe()
	if err != nil {
		return 4
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=ignore-stop")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		return 4
	}
	w.Close()
	// Wait until the grandchild ignores SIGINT and SIGTERM (it says ready).
	if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
		return 4
	}
	_ = os.WriteFile(os.Getenv("PIDFILE"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	_ = notify.Ready(c, "")
	return waitStop(c)
}

// helperController runs a Controller with a persistent service and a
// service of 2 ready workers, prints their 3 pids on one line, then waits to
// be killed.
func helperController([]string) int {
	sup := helperSpec("sup", "ready", 1)
	sup.Persistent = true
	c, err := NewController([]Spec{sup, helperSpec("w", "ready", 2)}, ControllerOptions{})
	if err != nil {
		return 5
	}
	go func() { _ = c.Run(context.Background()) }()
	if err := c.WaitReady(context.Background()); err != nil {
		return 7
	}
	var pids []string
	for _, ci := range c.Children() {
		pids = append(pids, strconv.Itoa(ci.PID))
	}
	fmt.Println(strings.Join(pids, " "))
	select {}
}

// --- helpers for tests ---

// startContainer starts a container and registers its Stop.
func startContainer(t *testing.T, specs []Spec, opts Options) *Container {
	t.Helper()
	c, err := NewContainer(specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return c
}

func waitReady(t *testing.T, w interface{ WaitReady(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WaitReady(ctx); err != nil {
		t.Fatalf("wait ready: %v", err)
	}
}

// eventually polls cond every 5ms for up to 20s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// noChildren fails unless this process has no child at all (alive or
// zombie).
func noChildren(t *testing.T) {
	t.Helper()
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if !errors.Is(err, unix.ECHILD) {
		t.Fatalf("this process still has children (waitid: %v, signo %d)", err, info.Signo)
	}
}

func pidsOf(children []ChildInfo) []int {
	var out []int
	for _, c := range children {
		if c.PID != 0 {
			out = append(out, c.PID)
		}
	}
	return out
}

func countState(children []ChildInfo, service string, st State) int {
	n := 0
	for _, c := range children {
		if c.Service == service && c.State == st {
			n++
		}
	}
	return n
}

func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// watchLeast samples, until the returned function is called, the least
// number of ready children of service seen; the function returns it.
func watchLeast(c *Container, service string) func() int {
	least := -1
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := countState(c.Children(), service, StateReady); least < 0 || n < least {
				least = n
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() int {
		close(stop)
		<-done
		return least
	}
}
