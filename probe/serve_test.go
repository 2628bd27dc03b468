//go:build linux

package probe

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The serve-http helper listens on $PROBE_TEST_PORTS loopback ports (1 by
// default), prints each address on a line, then "ready", and serves "ok"
// on every path until its stdin closes. With $PROBE_TEST_CLOSE set, it
// closes every connection after one response.
func init() {
	helpers["serve-http"] = func() int {
		n, _ := strconv.Atoi(os.Getenv("PROBE_TEST_PORTS"))
		n = max(n, 1)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok\n")
		})}
		srv.SetKeepAlivesEnabled(os.Getenv("PROBE_TEST_CLOSE") == "")
		for range n {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Println(ln.Addr())
			go srv.Serve(ln)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
}

// startServer runs the serve-http helper in a child process and returns
// its addresses; the test's end stops it.
func startServer(tb testing.TB, ports int, closeEach bool) []string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=serve-http", "PROBE_TEST_PORTS="+strconv.Itoa(ports))
	if closeEach {
		cmd.Env = append(cmd.Env, "PROBE_TEST_CLOSE=1")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("serve-http: %v", err)
		}
	})
	var addrs []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		addrs = append(addrs, strings.TrimSpace(sc.Text()))
	}
	if len(addrs) != ports {
		tb.Fatalf("serve-http gave %d addresses, want %d", len(addrs), ports)
	}
	return addrs
}
