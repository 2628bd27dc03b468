//go:build linux

package probe

import (
	"context"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) of this process, or of its
// reaped children.
func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU runs the benchmark loop and reports this process's CPU per
// attempt (cpu-µs/op) beside the wall time; the servers are child processes,
// so their CPU is not counted.
func measureCPU(b *testing.B, attempt func() error) {
	b.Helper()
	b.ReportAllocs()
	self, children := cpuTime(syscall.RUSAGE_SELF), cpuTime(syscall.RUSAGE_CHILDREN)
	b.ResetTimer()
	for b.Loop() {
		if err := attempt(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(cpuTime(syscall.RUSAGE_SELF)-self)/1e3/n, "cpu-µs/op")
	if c := cpuTime(syscall.RUSAGE_CHILDREN) - children; c > 0 {
		b.ReportMetric(float64(c)/1e3/n, "child-cpu-µs/op")
	}
}

func benchChecker(b *testing.B, spec Spec) {
	b.Helper()
	spec = spec.WithDefaults()
	chk, err := newChecker(spec, ExecRunner)
	if err != nil {
		b.Fatal(err)
	}
	defer chk.close()
	measureCPU(b, func() error { return chk.check(context.Background(), spec.Timeout) })
}

// BenchmarkHTTP is one attempt on a kept-alive connection to a server in a
// child process.
func BenchmarkHTTP(b *testing.B) {
	addr := startServer(b, 1, false)[0]
	benchChecker(b, Spec{HTTP: &HTTP{URL: "http://" + addr + "/healthz"}})
}

// BenchmarkHTTPNewConnection is one attempt to a server that closes every
// connection after its response (as an HTTP/1.0 server does).
func BenchmarkHTTPNewConnection(b *testing.B) {
	addr := startServer(b, 1, true)[0]
	benchChecker(b, Spec{HTTP: &HTTP{URL: "http://" + addr + "/healthz"}})
}

// BenchmarkNetHTTPClient is the same GET through net/http's Client and
// Transport (keep-alive), for comparison: what the http checker avoids.
func BenchmarkNetHTTPClient(b *testing.B) {
	url := "http://" + startServer(b, 1, false)[0] + "/healthz"
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Second}
	measureCPU(b, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
}

// BenchmarkTCP is one connect and close.
func BenchmarkTCP(b *testing.B) {
	addr := startServer(b, 1, false)[0]
	benchChecker(b, Spec{TCP: &TCP{Address: addr}})
}

// BenchmarkExec is one run of /bin/true through ExecRunner; child-cpu is
// the command's own CPU.
func BenchmarkExec(b *testing.B) {
	benchChecker(b, Spec{Exec: &Exec{Argv: []string{"/bin/true"}}})
}

// instant is a checker that passes at once: the scheduler's own cost.
type instant struct{}

func (instant) check(context.Context, time.Duration) error { return nil }
func (instant) close()                                     {}

// BenchmarkSchedulerOverhead is the scheduler's cost per attempt, without
// the attempt: 1,000 probes of an instant checker at a 1ms interval, one
// op per result received.
func BenchmarkSchedulerOverhead(b *testing.B) {
	s := New(context.Background(), Options{})
	defer s.Close()
	for range 1000 {
		if _, err := s.add(fakeSpec(time.Millisecond), instant{}); err != nil {
			b.Fatal(err)
		}
	}
	measureCPU(b, func() error {
		<-s.Results()
		return nil
	})
}
