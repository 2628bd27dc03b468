package container

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigild/vigil/logs"
	"github.com/vigild/vigil/notify"
)

// EnvService and EnvInstance tell each child its service's name and its
// instance number (from 0), so that it can say who it is, e.g. when it
// registers with the supervisor. EnvSpawn numbers the processes of one
// container, and EnvRun (when the container has a run id) names the run
// they belong to: both are inherited by a child's own descendants, which is
// how an orphan adopted by a subreaper is traced back to the process it
// came from.
const (
	EnvService  = "VIGIL_SERVICE"
	EnvInstance = "VIGIL_INSTANCE"
	EnvSpawn    = "VIGIL_SPAWN"
	EnvRun      = "VIGIL_RUN"
)

// notInherited are variables of the controller's own environment that
// children do not inherit (they describe the controller's parent, not
// theirs); Spec.Env may still set them.
var notInherited = []string{"NOTIFY_PIPE", "NOTIFY_SOCKET", "NOTIFY_LOG", "WATCHDOG_USEC", "WATCHDOG_PID", EnvRun, EnvSpawn}

// mergeEnv returns base with extra added, later entries replacing earlier
// ones of the same key.
func mergeEnv(base []string, extra ...string) []string {
	index := make(map[string]int, len(base)+len(extra))
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range append(base, extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// childEnv is base without notInherited, plus extra, plus NOTIFY_PIPE=3.
func childEnv(base, extra []string) []string {
	kept := make([]string, 0, len(base))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(notInherited, k) {
			kept = append(kept, kv)
		}
	}
	return mergeEnv(kept, append(slices.Clone(extra), "NOTIFY_PIPE=3")...)
}

// spawnJob is one process to start, prepared by the loop and run on a
// spawner thread; its results go back to the loop in an evSpawned.
type spawnJob struct {
	inst  *instance
	spec  *Spec
	role  role
	batch *batch
	seq   uint64
	env   []string
	files []*os.File // Spec.Files
	// Set by the spawner.
	pid     int
	pidfd   *os.File
	notifyR *os.File
	capture *logs.Capture
	hub     *logs.Hub
	err     error
	devnull *os.File
	reaper  *Subreaper // nil: none
	done    func(*spawnJob)
	fn      func() // when set, the job is only this, run on a spawner thread
	restart bool
}

// ensure starts inst's process if it should run and nothing runs or is
// being started for it, and no restart is scheduled.
func (c *Container) ensure(inst *instance) {
	if c.st.stopping || inst.removed || inst.stopped || inst.failed != "" || inst.cur != nil || inst.spawning != nil || inst.handover != nil ||
		(inst.restartAt != nil && inst.restartAt.index >= 0) {
		return
	}
	c.spawn(inst, &inst.svc.spec, roleCur, nil, inst.restarts > 0 || inst.lastExit != nil || inst.lastErr != "")
}

// spawn queues a spawn job for inst in role r (roleCur or roleNext).
func (c *Container) spawn(inst *instance, spec *Spec, r role, b *batch, restart bool) {
	c.st.seq++
	s := spec.forInstance(inst.index) // the process keeps the spec it was started with
	env := append(identityEnv(s.Name, inst.index), EnvSpawn+"="+strconv.FormatUint(c.st.seq, 10))
	if c.opts.runID != "" {
		env = append(env, EnvRun+"="+c.opts.runID)
	}
	if s.Port > 0 {
		env = append(env, "PORT="+strconv.Itoa(s.Port+inst.index))
	}
	job := &spawnJob{
		inst: inst, spec: &s, role: r, batch: b, seq: c.st.seq, restart: restart,
		env:   childEnv(os.Environ(), append(env, s.Env...)),
		files: s.Files, devnull: c.devnull, reaper: c.opts.reaper, hub: c.hub,
		done: func(j *spawnJob) { c.send(evSpawned{j}) },
	}
	inst.spawning = job
	if len(c.st.pending) == 0 {
		// A spawner waiting takes it at once: the loop's other work (the
		// exit's statistics and log line) then runs beside the fork.
		select {
		case c.pool.jobs <- job:
			c.handedOver(job)
			return
		default:
		}
	}
	c.st.pending = append(c.st.pending, job)
}

// handedOver records that job is now a spawner's.
func (c *Container) handedOver(job *spawnJob) {
	if c.st.inFlight == nil {
		c.st.inFlight = map[*spawnJob]bool{}
	}
	c.st.inFlight[job] = true
}

func identityEnv(service string, index int) []string {
	return []string{EnvService + "=" + service, EnvInstance + "=" + strconv.Itoa(index)}
}

// run starts the job's process on the calling spawner thread: it resolves
// the command, makes the pipes, forks and execs. It needs nothing of the
// loop.
func (j *spawnJob) run(sys *sysOps) {
	s := j.spec
	path := s.Command[0]
	if !strings.Contains(path, "/") {
		lp, err := sys.lookPath(path)
		if err != nil {
			j.err = fmt.Errorf("command %q: %w", path, err)
			return
		}
		path = lp
	}
	// Three pipes: the readiness messages (ours read with deadlines, so in
	// the poller), stdout and stderr (handed to the log hub). The child's
	// ends are plain descriptors, closed once it has them.
	var ends [3]pipeEnds
	for i := range ends {
		if ends[i], j.err = childPipe(i == 0); j.err != nil {
			for _, e := range ends[:i] {
				e.close()
			}
			j.err = fmt.Errorf("pipe: %w", j.err)
			return
		}
	}
	fds := []uintptr{j.devnull.Fd(), uintptr(ends[1].child), uintptr(ends[2].child), uintptr(ends[0].child)}
	for _, f := range j.files {
		fd, err := rawFD(f)
		if err != nil {
			j.err = fmt.Errorf("inherited file %s: %w", f.Name(), err)
			break
		}
		fds = append(fds, fd)
	}
	if j.err == nil {
		req := startRequest{path: path, argv: s.Command, env: j.env, dir: s.Dir, files: fds, cgroupFD: -1, credential: s.Credential}
		if j.reaper == nil {
			j.pid, j.pidfd, j.err = sys.start(req)
		} else {
			j.err = j.reaper.startChild(j.seq, fmt.Sprintf("%s.%d", s.Name, j.inst.index), func(cgroupFD int) (int, error) {
				req.cgroupFD = cgroupFD
				j.pid, j.pidfd, j.err = sys.start(req)
				return j.pid, j.err
			})
		}
	}
	for i := range ends {
		ends[i].closeChild()
	}
	if j.err != nil {
		for i := range ends {
			ends[i].close()
		}
		return
	}
	notifyR, outR, errR := ends[0].ours, ends[1].ours, ends[2].ours
	j.notifyR = notifyR
	j.capture = j.hub.Capture(logs.Identity{Service: s.Name, Instance: j.inst.index, PID: j.pid}, outR, errR)
}

// rawFD returns f's descriptor without changing its blocking mode (Fd
// would make it blocking for every process sharing it).
func rawFD(f *os.File) (uintptr, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd uintptr
	if err := rc.Control(func(x uintptr) { fd = x }); err != nil {
		return 0, err
	}
	return fd, nil
}

// spawnPool runs spawn jobs on threads that stay alive, each locked, until
// stop: a child's parent-death signal comes when its creating thread exits.
type spawnPool struct {
	jobs chan *spawnJob
	wg   sync.WaitGroup
}

func newSpawnPool(n int, sys *sysOps) *spawnPool {
	p := &spawnPool{jobs: make(chan *spawnJob)}
	for range n {
		p.wg.Go(func() {
			lockThread() // never unlocked: the thread exits with the goroutine
			for j := range p.jobs {
				if j.fn != nil {
					j.fn()
					continue
				}
				j.run(sys)
				j.done(j)
			}
		})
	}
	return p
}

// stop ends the spawner goroutines and their threads; call it only once
// every child they started has been reaped.
func (p *spawnPool) stop() {
	close(p.jobs)
	p.wg.Wait()
}

// onSpawned installs a started process, or records why it could not start.
func (c *Container) onSpawned(j *spawnJob) {
	delete(c.st.inFlight, j)
	inst := j.inst
	if inst.spawning == j {
		inst.spawning = nil
	}
	now := c.now()
	if inst.svc.spec.StartLimitBurst > 0 && j.role == roleCur {
		inst.starts = append(inst.starts, now)
	}
	if j.err != nil {
		c.spawnFailed(j, now)
		return
	}
	p := &proc{
		inst: inst, spec: j.spec, seq: j.seq, role: j.role, batch: j.batch,
		pid: j.pid, pidfd: j.pidfd, notifyR: j.notifyR, capture: j.capture,
		started: now, lastActivity: now,
	}
	c.st.live++
	switch {
	case c.st.stopping || inst.removed || (inst.stopped && j.role == roleCur) || (j.batch != nil && j.batch.ended):
		// Nobody wants it any more: it is stopped at once.
		p.role = roleOld
		c.st.retiring = append(c.st.retiring, p)
	case j.role == roleNext && inst.cur != nil:
		inst.next = p
	case inst.cur == nil:
		p.role = roleCur
		inst.cur = p
	default:
		// Never a second current process: this cannot happen, and if it
		// did, the newcomer is the one stopped.
		c.logger.Error("an instance already has a process: stopping the new one", "child", p.name(), "pid", p.pid, "running", inst.cur.pid)
		p.role = roleOld
		c.st.retiring = append(c.st.retiring, p)
	}
	if j.restart {
		inst.restarts++
	}
	inst.lastErr = ""
	inst.svc.stats.spawn(now, j.restart)
	c.logger.Info("child started", "child", p.name(), "pid", p.pid)
	c.wg.Add(2)
	go c.watch(p)
	go c.readNotify(p)
	c.policy.ChildSpawn(c.info(inst, p, now))
	if p.role == roleOld {
		c.stopProc(p)
		return
	}
	c.armClock(p, now)
	switch {
	case p.spec.Readiness == ReadyStarted:
		c.markReady(p)
	case p.spec.ReadinessProbe != nil:
		c.startProbe(p, readinessProbe)
	}
}

// spawnFailed records a failure to start a process: for an instance's own
// process, a restart after its back-off; for a replacement, the failure of
// its batch (the running process stays).
func (c *Container) spawnFailed(j *spawnJob, now time.Time) {
	inst := j.inst
	err := fmt.Errorf("%s: %w", inst.name(), j.err)
	c.logger.Error("child failed to start", "child", inst.name(), "error", j.err)
	inst.lastErr = j.err.Error()
	inst.svc.stats.failure(now)
	inst.svc.stats.spawnFailed(inst.index)
	if j.batch != nil {
		c.failBatch(j.batch, fmt.Errorf("%w: %w", ErrReplacementFailed, err))
	}
	if c.st.stopping || inst.removed || inst.cur != nil {
		return
	}
	if !inst.everReady && inst.startErr == nil {
		inst.startErr = err
	}
	if inst.svc.spec.Restart || j.batch != nil {
		c.scheduleRestart(inst, 0)
	}
}

// spawnFailedDelay is the least wait before a process that could not be
// started is tried again: retrying at once would only fail the same way.
func spawnFailedDelay(s Spec) time.Duration { return s.RestartDelay }

// watch waits for p to exit (in the poller, no thread blocked) and tells
// the loop, which reaps it.
func (c *Container) watch(p *proc) {
	defer c.wg.Done()
	if err := c.sys.waitExit(p.pid, p.pidfd); err != nil {
		c.logger.Error("waiting for child failed", "child", p.name(), "pid", p.pid, "error", err)
	}
	c.send(evExited{p})
}

func (c *Container) readNotify(p *proc) {
	defer c.wg.Done()
	defer p.notifyR.Close()
	r := notify.NewReader(p.notifyR, c.logger.With("child", p.name()))
	for {
		m, err := r.Next()
		if err != nil {
			return
		}
		c.send(evMessage{p, m})
	}
}

// signal sends sig to p's process group unless p has been reaped (the loop
// reaps, so a reaped pid is never signalled).
func (c *Container) signal(p *proc, sig syscall.Signal) {
	if p.reaped {
		return
	}
	if err := c.sys.signal(p.pid, sig); err != nil && err != syscall.ESRCH {
		c.logger.Warn("signal failed", "child", p.name(), "pid", p.pid, "signal", sig.String(), "error", err)
	}
}
