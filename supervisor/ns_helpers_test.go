package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func init() {
	// calls SOCKET LINE...: sends each line and prints the final reply to
	// it (or "closed"), one a line. "$SELF" in a line stands for its pid,
	// "$CHILD" for the pid of a child it starts.
	helpers["calls"] = helperCalls
	// serve SOCKET PARENTPID [ALLOWUID]: serves a Server with that ParentPID
	// until SIGTERM, printing "ready" once listening.
	helpers["serve"] = helperServe
	// init SOCKET:PARENTPID...: plays a container's init (pid 1 of a pid
	// namespace): starts a serve helper for each argument, prints "ready"
	// when they all listen, then the name of each signal it receives.
	helpers["init"] = helperInit
}

func helperCalls(args []string) int {
	c, err := net.Dial("unix", args[0])
	if err != nil {
		fmt.Println("dial error:", err)
		return 0
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, line := range args[1:] {
		line = strings.ReplaceAll(line, `"$SELF"`, strconv.Itoa(os.Getpid()))
		if strings.Contains(line, `"$CHILD"`) {
			child := exec.Command("sleep", "60")
			if err := child.Start(); err != nil {
				fmt.Println("child:", err)
				return 1
			}
			defer func() { child.Process.Kill(); child.Wait() }()
			line = strings.ReplaceAll(line, `"$CHILD"`, strconv.Itoa(child.Process.Pid))
		}
		var call struct {
			ID any `json:"id"`
		}
		_ = json.Unmarshal([]byte(line), &call)
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			fmt.Println("closed")
			return 0
		}
		for {
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			reply, err := r.ReadBytes('\n')
			if err != nil {
				fmt.Println("closed")
				return 0
			}
			var m map[string]any
			if json.Unmarshal(reply, &m) == nil && fmt.Sprint(m["id"]) == fmt.Sprint(call.ID) && m["finished"] == true {
				fmt.Print(string(reply))
				break
			}
		}
	}
	return 0
}

func helperServe(args []string) int {
	parent, _ := strconv.Atoi(args[1])
	var opts ListenOptions
	if len(args) > 2 {
		uid, _ := strconv.Atoi(args[2])
		opts.AllowUIDs = []int{uid}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts.Logger = logger
	l, err := Listen(args[0], opts)
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("ready")
	if err := (&Server{ParentPID: parent, Logger: logger}).Serve(ctx, l); err != nil {
		fmt.Println("serve:", err)
		return 1
	}
	return 0
}

func helperInit(args []string) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGTERM)
	exe, _ := os.Executable()
	var children []*exec.Cmd
	defer func() {
		for _, c := range children {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	}()
	for _, a := range args {
		socket, parent, _ := strings.Cut(a, ":")
		cmd := exec.Command(exe, socket, parent)
		cmd.Env = append(os.Environ(), helperEnv+"=serve")
		cmd.Stderr = os.Stderr
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			fmt.Println("start:", err)
			return 1
		}
		children = append(children, cmd)
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
			fmt.Printf("serve helper: %q\n", line)
			return 1
		}
	}
	fmt.Println("ready", os.Getpid())
	for s := range sigs {
		fmt.Println(SignalName(s.(syscall.Signal)))
		if s == syscall.SIGTERM {
			return 0
		}
	}
	return 0
}
