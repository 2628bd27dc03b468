//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/supervisor"
)

// alone measures `vigil supervise` alone with n registered connections,
// held by this command: the supervisor's RSS per connection, and a status
// call's round trip, read as raw bytes and through vigil's rpc client.
func alone(ctx context.Context, dir string, o options, n int) error {
	socket := filepath.Join(dir, "alone"+strconv.Itoa(n)+".ipc")
	logf, err := os.Create(filepath.Join(dir, "alone.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// The limit of connections above n: the default (10,000) would refuse
	// the last of 10,000 with this command's own two besides.
	conf := filepath.Join(dir, "alone.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[supervisor]\nsocket = %q\nmax_connections = %d\n", socket, n+100)), 0o600); err != nil {
		return err
	}
	sup := exec.Command(o.vigil, "supervise", "--config", conf, "--log-level", "warn")
	sup.Stdout, sup.Stderr = logf, logf
	sup.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sup.Start(); err != nil {
		return err
	}
	defer func() {
		_ = sup.Process.Signal(syscall.SIGTERM)
		_ = sup.Wait()
	}()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() (net.Conn, error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("unix", socket)
			if err == nil || time.Now().After(deadline) {
				return c, err
			}
			if err := sleep(ctx, 10*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	probe, err := dial() // the supervisor is up
	if err != nil {
		return err
	}
	conns = append(conns, probe)
	// Past the supervisor's first trim (2 s after it is up), so that the
	// binary's pages its start-up touched are not counted as the
	// connections' cost when the trim drops them.
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	before, err := readMemory(sup.Process.Pid)
	if err != nil {
		return err
	}
	pid := os.Getpid()
	buf := make([]byte, 512)
	for i := range n {
		c, err := dial()
		if err != nil {
			return fmt.Errorf("connection %d: %w", i+1, err)
		}
		conns = append(conns, c)
		line := fmt.Sprintf(`{"id":2,"do":"register","state":{"process_id":%d,"name":"idle","instance":%d}}`+"\n", pid, i)
		if _, err := c.Write([]byte(line)); err != nil {
			return fmt.Errorf("connection %d: %w", i+1, err)
		}
		if err := readReply(c, buf); err != nil {
			return fmt.Errorf("connection %d: register: %w", i+1, err)
		}
	}
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	after, err := readMemory(sup.Process.Pid)
	if err != nil {
		return err
	}

	// Status, raw: one line written, bytes read until the final newline.
	var raw []time.Duration
	size := 0
	rbuf := make([]byte, 1<<20)
	for i := range o.calls + 3 {
		start := time.Now()
		if _, err := probe.Write([]byte(`{"id":2,"do":"status"}` + "\n")); err != nil {
			return err
		}
		got := 0
		for {
			k, err := probe.Read(rbuf)
			if err != nil {
				return fmt.Errorf("status, raw: %w", err)
			}
			got += k
			if k > 0 && rbuf[k-1] == '\n' {
				break
			}
		}
		if i >= 3 {
			raw = append(raw, time.Since(start))
		}
		size = got
	}

	// Status through vigil's rpc client, which parses the reply.
	c, err := supervisor.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	var parsed []time.Duration
	for i := range o.calls + 3 {
		start := time.Now()
		reply, err := c.Conn().Call(ctx, "status", nil, func(*rpc.Message) error { return nil })
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		if i >= 3 {
			parsed = append(parsed, time.Since(start))
		}
		if elems, _ := reply.GetArray("connections"); len(elems) != n {
			return fmt.Errorf("status lists %d connections, want %d", len(elems), n)
		}
	}
	fmt.Printf("supervisor alone, %d registered connections: status round trip read as raw bytes: median %v, p99 %v; through vigil's rpc client: median %v, p99 %v (%d calls each; reply %d bytes)\n",
		n, median(raw), quantile(raw, 0.99), median(parsed), quantile(parsed, 0.99), o.calls, size)
	fmt.Printf("supervisor alone, %d registered connections: RSS %s → %s: %.1f KiB per connection (anonymous %.1f KiB); %d threads\n",
		n, mib(before.rss), mib(after.rss), float64(after.rss-before.rss)/float64(n)/1024, float64(after.anon-before.anon)/float64(n)/1024, after.threads)
	return nil
}

// readReply reads one reply line, which must not be a failure.
func readReply(c net.Conn, buf []byte) error {
	got := 0
	for {
		k, err := c.Read(buf[got:])
		if err != nil {
			return err
		}
		got += k
		if i := bytes.IndexByte(buf[:got], '\n'); i >= 0 {
			if bytes.Contains(buf[:i], []byte(`"failed":true`)) {
				return errors.New(string(buf[:i]))
			}
			return nil
		}
		if got == len(buf) {
			return errors.New("reply too long")
		}
	}
}
