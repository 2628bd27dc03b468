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

// inheritedEnv is what a child inherits of env (the controller's
// environment): env without notInherited, each variable once (see
// mergeEnv). The container makes it once, at its start.
func inheritedEnv(env []string) []string {
	kept := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(notInherited, k) {
			kept = append(kept, kv)
		}
	}
	return mergeEnv(kept)
}

// childEnv is inherited (from inheritedEnv) plus extra, plus
// NOTIFY_PIPE=3, merged as mergeEnv merges. It looks for each of the few
// variables of extra in the list rather than indexing every variable in
// a map: this runs for every spawn.
func childEnv(inherited, extra []string) []string {
	out := make([]string, len(inherited), len(inherited)+len(extra)+1)
	copy(out, inherited)
	for _, kv := range extra {
		out = setEnv(out, kv)
	}
	return setEnv(out, "NOTIFY_PIPE=3")
}

// setEnv replaces the variable of kv's name in env, or appends kv.
func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	for i, x := range env {
		if strings.HasPrefix(x, k) && (len(x) == len(k) || x[len(k)] == '=') {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// DescriptorsPerChild is how many descriptors the container holds for each
// running child: its readiness, stdout and stderr pipes (the read ends)
// and its pidfd.
const DescriptorsPerChild = 4

// spawnJob is one process to start, prepared by the loop (its pipes, made
// in the process's descriptor table) and run on a spawner thread (the
// fork); its results go back to the loop in an evSpawned.
type spawnJob struct {
	inst  *instance
	spec  *Spec
	role  role
	batch *batch
	seq   uint64
	env   []string
	files []*os.File // Spec.Files
	// Set by prepare, on the loop: the readiness, stdout and stderr pipes.
	prepared bool
	ends     [3]pipeEnds
	childFDs []int // what the child gets as 0, 1, 2, 3, ...
	// Set by the spawner.
	pid     int
	err     error
	devnull *os.File
	reaper  *Subreaper // nil: none
	done    func(*spawnJob)
	fn      func(th *spawnThread) // when set, the job is only this, run on a spawner thread
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
		env:   childEnv(c.inherited, append(env, s.Env...)),
		files: s.Files, devnull: c.devnull, reaper: c.opts.reaper,
		done: func(j *spawnJob) { c.send(evSpawned{j}) },
	}
	inst.spawning = job
	if len(c.st.pending) == 0 {
		// A spawner waiting takes it at once: the loop's other work (the
		// exit's statistics and log line) then runs beside the fork.
		c.prepare(job)
		select {
		case c.pool.jobs <- job:
			c.handedOver(job)
			return
		default:
		}
	}
	c.st.pending = append(c.st.pending, job)
}

// prepare makes a job's pipes, in the process's table, before a spawner
// takes it (once): a spawner thread may have a table of its own, which
// holds only what it forks with. A failure is the job's error, which the
// spawner hands straight back.
func (j *spawnJob) prepare() {
	if j.prepared {
		return
	}
	j.prepared = true
	// Three pipes: the readiness messages (ours non-blocking, for the
	// watcher), stdout and stderr (handed to the log hub). All are bare
	// descriptors until then; the child's ends are closed once it has
	// them.
	j.ends = [3]pipeEnds{noPipe, noPipe, noPipe}
	for i := range j.ends {
		var err error
		if j.ends[i], err = childPipe(i == 0); err != nil {
			for k := range j.ends[:i] {
				j.ends[k].close()
			}
			j.err = fmt.Errorf("pipe: %w", err)
			return
		}
	}
	j.childFDs = []int{int(j.devnull.Fd()), j.ends[1].child, j.ends[2].child, j.ends[0].child}
	for _, f := range j.files {
		fd, err := rawFD(f)
		if err != nil {
			j.err = fmt.Errorf("inherited file %s: %w", f.Name(), err)
			return
		}
		j.childFDs = append(j.childFDs, int(fd))
	}
}

// prepare prepares job (see spawnJob.prepare).
func (c *Container) prepare(job *spawnJob) { job.prepare() }

// release closes what prepare made that is still open: the child's ends
// always, ours too unless keep.
func (j *spawnJob) release(keep bool) {
	if !j.prepared {
		return
	}
	for i := range j.ends {
		if keep {
			j.ends[i].closeChild()
		} else {
			j.ends[i].close()
		}
	}
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

// run starts the job's process on the calling spawner thread: it
// resolves the command, gets the child's descriptors into the thread's
// table, forks and execs. It needs nothing of the loop.
func (j *spawnJob) run(sys *sysOps, th *spawnThread) {
	if j.err != nil {
		return // prepare failed
	}
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
	fds, err := th.fetch(j.childFDs)
	if err != nil {
		j.err = err
		return
	}
	defer th.release(fds)
	req := startRequest{path: path, argv: s.Command, env: j.env, dir: s.Dir, files: fds, cgroupFD: -1, credential: s.Credential}
	if j.reaper == nil {
		j.pid, j.err = sys.start(req)
		return
	}
	j.err = j.reaper.startChild(j.seq, s.Name+"."+strconv.Itoa(j.inst.index), th, s.SharedCgroup, func(cgroupFD int) (int, error) {
		req.cgroupFD = cgroupFD
		j.pid, j.err = sys.start(req)
		return j.pid, j.err
	})
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
	// jobs holds one prepared job per spawner besides those they run:
	// a spawner done with a job takes the next at once rather than wait
	// for the loop to hand it over (the loop, busy with the spawn just
	// done, came back to its select only after it; with a thousand
	// workers starting and the CPUs busy, the spawners waited on it). A
	// job in it is the spawners' (in flight): a stop or a removal of its
	// service stops the process it starts, as it does one a spawner has.
	jobs chan *spawnJob
	wg   sync.WaitGroup
}

// newSpawnPool starts n spawner threads; with shared, they fork from the
// process's descriptor table (see spawnThread).
func newSpawnPool(n int, sys *sysOps, shared bool) *spawnPool {
	// A spawner thread that takes a table of its own keeps only the
	// runtime's anonymous inodes (its epoll set and eventfd): they must
	// exist before. A pipe is always put in the runtime's poller, which
	// sets the poller up.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	p := &spawnPool{jobs: make(chan *spawnJob, n)}
	for range n {
		p.wg.Go(func() { p.serve(sys, shared) })
	}
	return p
}

// serve runs jobs on a thread locked for good (it exits with the
// goroutine), never the main thread: if this goroutine is on it, another
// one, which cannot run here while this one holds it, serves instead.
func (p *spawnPool) serve(sys *sysOps, shared bool) {
	lockThread()
	if isMainThread() {
		locked := make(chan struct{})
		p.wg.Go(func() {
			lockThread()
			close(locked)
			p.run(sys, newSpawnThread(shared))
		})
		<-locked
		unlockThread()
		return
	}
	p.run(sys, newSpawnThread(shared))
}

func (p *spawnPool) run(sys *sysOps, th *spawnThread) {
	for j := range p.jobs {
		if j.fn != nil {
			j.fn(th)
			continue
		}
		j.run(sys, th)
		j.done(j)
	}
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
	pidfd := -1
	if j.err == nil {
		pidfd, j.err = c.openPidfd(j.pid, j.seq)
	}
	j.release(j.err == nil)
	now := c.now()
	if inst.svc.spec.StartLimitBurst > 0 && j.role == roleCur {
		inst.starts = append(inst.starts, now)
	}
	if j.err != nil {
		c.spawnFailed(j, now)
		return
	}
	s := j.spec
	p := &proc{
		inst: inst, spec: s, seq: j.seq, role: j.role, batch: j.batch,
		pid: j.pid, pidfd: pidfd,
		capture: c.hub.CaptureFDs(logs.Identity{Service: s.Name, Instance: inst.index, PID: j.pid}, j.ends[1].ours, j.ends[2].ours),
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
	c.watchProc(p, j.ends[0].ours)
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

// openPidfd opens the pidfd of a child just started (spawn number seq);
// if it cannot (no descriptor left), the child is killed and reaped, and
// the error returned.
func (c *Container) openPidfd(pid int, seq uint64) (int, error) {
	fd, err := c.sys.pidfd(pid)
	if err == nil {
		return fd, nil
	}
	_ = c.sys.signal(pid, syscall.SIGKILL)
	_, _ = c.sys.reap(pid)
	if c.opts.reaper != nil {
		c.opts.reaper.reaped(pid, seq, true)
	}
	return -1, err
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
		c.failStart(inst, err)
	}
	if inst.svc.spec.Restart || j.batch != nil {
		c.scheduleRestart(inst, 0)
	}
}

// spawnFailedDelay is the least wait before a process that could not be
// started is tried again: retrying at once would only fail the same way.
func spawnFailedDelay(s Spec) time.Duration { return s.RestartDelay }

// watchProc has p's exit and its readiness pipe (ours, which it takes)
// watched: by the container's watcher, or where there is none, by two
// goroutines of p's own.
func (c *Container) watchProc(p *proc, ours int) {
	if c.watcher != nil {
		c.watcher.add(p, ours)
		return
	}
	c.watchAlone(p, ours)
}

// watchAlone starts p's two goroutines (see watchProc): one waits for its
// exit, one reads its readiness pipe, ours, in Go's poller.
func (c *Container) watchAlone(p *proc, ours int) {
	f := os.NewFile(uintptr(ours), "|0") // non-blocking: in the poller
	c.wg.Add(2)
	go c.watch(p, f)
	go c.readNotify(p, f)
}

// watch waits for p to exit (in the poller, no thread blocked) and tells
// the loop, which reaps it. The readiness pipe, notifyR, is read for a
// grace after the exit, then given up (a grandchild that escaped the
// process group may hold it open).
func (c *Container) watch(p *proc, notifyR *os.File) {
	defer c.wg.Done()
	if err := c.sys.waitExit(p.pid, p.pidfd); err != nil {
		c.logger.Error("waiting for child failed", "child", p.name(), "pid", p.pid, "error", err)
	}
	_ = notifyR.SetReadDeadline(time.Now().Add(outputGrace))
	c.send(evExited{p})
}

func (c *Container) readNotify(p *proc, notifyR *os.File) {
	defer c.wg.Done()
	defer notifyR.Close()
	r := notify.NewReader(notifyR, c.logger.With("child", p.name()))
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
