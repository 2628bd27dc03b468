package container

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/vigild/vigil/probe"
)

// probeKind says what a process's probe checks.
type probeKind int

const (
	readinessProbe probeKind = iota + 1 // until it is ready
	healthProbe                         // once it is ready
)

// evProbe: a probe's result.
type evProbe struct{ r probe.Result }

func (e evProbe) handle(c *Container) { c.onProbe(e.r) }

// probes returns the container's probe scheduler, starting it (and the
// goroutine that hands its results to the loop) on first use. Exec probes
// run through the container's spawner threads (see runCommand).
func (c *Container) probes() *probe.Scheduler {
	if c.st.sched == nil {
		// Only changes of a probe's status matter here (and each is a
		// change of what Children shows).
		c.st.sched = probe.New(context.Background(), probe.Options{Runner: c.runCommand, ChangesOnly: true})
		c.st.probed = map[probe.Handle]*proc{}
		results := c.st.sched.Results()
		c.wg.Go(func() {
			for r := range results {
				c.send(evProbe{r})
			}
		})
	}
	return c.st.sched
}

// closeProbes stops the probe scheduler, once the loop has ended; its
// results goroutine then ends.
func (c *Container) closeProbes() {
	if c.st.sched != nil {
		c.st.sched.Close()
	}
}

// startProbe starts p's probe of kind k, if its spec has one; a probe
// that cannot be started is logged, and for readiness the process is
// taken as ready (it would otherwise never be).
func (c *Container) startProbe(p *proc, k probeKind) {
	spec := p.spec.ReadinessProbe
	if k == healthProbe {
		spec = p.spec.HealthProbe
	}
	if spec == nil {
		return
	}
	h, err := c.probes().Add(*spec)
	if err != nil {
		c.logger.Error("probe not started", "child", p.name(), "error", err)
		if k == readinessProbe {
			c.markReady(p)
		}
		return
	}
	p.probe, p.probeKind = h, k
	c.st.probed[h] = p
}

// stopProbe stops p's probe, if it has one: no result of it is received
// afterwards.
func (c *Container) stopProbe(p *proc) {
	if p.probeKind == 0 {
		return
	}
	c.st.sched.Remove(p.probe)
	delete(c.st.probed, p.probe)
	p.probeKind = 0
}

// onProbe applies a probe's result: a readiness probe that passes makes
// its process ready (and its health probe starts); a health probe that
// fails is a failed health check, for the policy to decide.
func (c *Container) onProbe(r probe.Result) {
	p := c.st.probed[r.Handle]
	if p == nil || p.reaped || p.stopping {
		return
	}
	switch p.probeKind {
	case readinessProbe:
		if r.Status != probe.StatusPassing {
			if r.Err != nil {
				p.status = "readiness probe: " + r.Err.Error()
			}
			return
		}
		c.stopProbe(p)
		p.status = ""
		p.lastActivity = c.now()
		c.markReady(p) // starts its health probe
		c.armClock(p, p.lastActivity)
	case healthProbe:
		switch {
		case r.Status == probe.StatusPassing && p.unhealthy:
			p.unhealthy = false
			p.status = ""
		case r.Status == probe.StatusFailing && r.Changed:
			p.unhealthy = true
			reason := "health probe failed"
			if r.Err != nil {
				reason += ": " + r.Err.Error()
			}
			p.status = reason
			action := c.policy.HealthCheckFailed(c.info(p.inst, p, c.now()))
			c.logger.Warn("child failed its health probe", "child", p.name(), "pid", p.pid, "error", r.Err, "action", action)
			switch action {
			case Kill:
				p.killed = reason
				c.signal(p, syscall.SIGKILL)
			case StopContainer:
				p.killed = reason
				c.stopByPolicy()
			}
		}
	}
}

// probeSeq numbers the processes exec probes start, apart from the
// children's (VIGIL_SPAWN) numbers.
var probeSeq atomic.Uint64

// runCommand runs an exec probe's command as a probe.Runner: started on a
// spawner thread (so it dies with the controller, and the subreaper knows
// it is not an orphan), in a process group of its own, waited for on its
// pidfd; when ctx ends, or once it has exited, what is left of its group
// is killed; then it is reaped. Its exit code is returned (128+N for a
// death by signal N).
func (c *Container) runCommand(ctx context.Context, argv, env []string, dir string) (int, error) {
	if len(argv) == 0 {
		return -1, fmt.Errorf("exec probe: no command")
	}
	path := argv[0]
	if !strings.Contains(path, "/") {
		lp, err := c.sys.lookPath(path)
		if err != nil {
			return -1, fmt.Errorf("exec probe: command %q: %w", path, err)
		}
		path = lp
	}
	if env == nil {
		env = os.Environ()
	}
	type started struct {
		pid   int
		pidfd int
		err   error
	}
	res := make(chan started, 1)
	job := &spawnJob{fn: func(th *spawnThread) {
		var s started
		fds, err := th.fetch([]int{int(c.devnull.Fd()), int(c.devnull.Fd()), int(c.devnull.Fd())})
		if err != nil {
			s.err = err
			res <- s
			return
		}
		defer th.release(fds)
		req := startRequest{path: path, argv: argv, env: env, dir: dir, cgroupFD: -1, files: fds}
		start := func(int) (int, error) {
			s.pid, s.err = c.sys.start(req)
			return s.pid, s.err
		}
		if r := c.opts.reaper; r != nil {
			s.err = r.startCommand(probeSeq.Add(1), start)
		} else {
			_, s.err = start(-1)
		}
		res <- s
	}}
	select {
	case c.pool.jobs <- job:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	s := <-res
	if s.err == nil {
		if s.pidfd, s.err = c.sys.pidfd(s.pid); s.err != nil {
			_ = c.sys.signal(s.pid, syscall.SIGKILL)
			_, _ = c.sys.reap(s.pid)
			if r := c.opts.reaper; r != nil {
				r.forget(s.pid)
			}
		}
	}
	if s.err != nil {
		return -1, fmt.Errorf("exec probe: %w", s.err)
	}
	defer closeFD(s.pidfd)
	exited := make(chan error, 1)
	go func() { exited <- c.sys.waitExit(s.pid, s.pidfd) }()
	var werr, ctxErr error
	select {
	case werr = <-exited:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		_ = c.sys.signal(s.pid, syscall.SIGKILL)
		werr = <-exited
	}
	// The leader is a zombie until reaped: its pid still names its group.
	_ = c.sys.signal(s.pid, syscall.SIGKILL)
	status, err := c.sys.reap(s.pid)
	if r := c.opts.reaper; r != nil {
		r.forget(s.pid)
	}
	switch {
	case ctxErr != nil:
		return -1, fmt.Errorf("exec probe killed: %w", ctxErr)
	case werr != nil:
		return -1, fmt.Errorf("exec probe: wait for pid %d: %w", s.pid, werr)
	case err != nil:
		return -1, fmt.Errorf("exec probe: %w", err)
	case status.Signal != 0:
		return 128 + int(status.Signal), nil
	}
	return status.Code, nil
}
