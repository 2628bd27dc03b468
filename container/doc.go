// Package container runs and watches child processes: the controller and
// containers of vigil, after Ruby's async-container.
//
// A [Container] runs the children of a set of services (a [Spec] each,
// with Count instances). Every child is an executable started in a process
// group of its own, with a parent-death signal (SIGKILL), its standard
// output and error captured apart by a [logs.Hub] (the console, files, the
// journal, and the rings `vigil logs` reads), and a readiness pipe on file
// descriptor 3 named by NOTIFY_PIPE=3, on which it writes the JSON messages
// of package notify.
//
// One owner. All of a container's state (services, instances, their
// processes, readiness clocks, back-off, stopping) belongs to one
// goroutine, its loop, which receives events (a spawn finished, a child
// exited, a child said something, an alarm passed) and commands (its
// methods). Nothing holds a lock over that state, and the loop never
// forks: children are started by a pool of spawner threads (one per CPU by
// default, [Options.Spawners]), each locked for the container's lifetime,
// because Linux delivers the parent-death signal when the creating thread
// exits. An instance has at most one current process and at most one
// replacement being started beside it, both known to the loop; a spawn
// that fails is a state of its instance (its error and its next retry),
// never a second process.
//
// Readiness clocks: every message from a child resets its clock. Before
// the child is ready, Spec.StartupTimeout applies; after, the
// HealthCheckTimeout. A clock is an alarm of the loop at its deadline; a
// [Policy] decides what happens when one runs out (the [DefaultPolicy]
// kills the child) and when a child exits.
//
// Restart: a child whose Spec.Restart is set is restarted when it exits.
// The first failure of an instance restarts it at once; each further
// failure of an instance that lived less than Spec.StableAfter waits a
// delay that starts at Spec.RestartDelay and doubles up to
// Spec.RestartDelayMax, with jitter. A spawn that fails (ENOENT, ETXTBSY,
// EAGAIN at the process limit) waits at least RestartDelay. With a start
// limit, an instance started too often has failed until StartService.
//
// Stopping escalates per child: the stop signal (SIGINT by default) to its
// process group, wait Spec.GracefulStop, SIGTERM, wait again, SIGKILL.
// When a child's main process exits, whatever is left of its process group
// is killed before the loop reaps it, so a pid is never signalled once
// reaped. With a [Subreaper] (vigil run), descendants that left the
// process group are found too (by cgroup, or by the environment they
// inherit) and stopped, and orphans are reaped as by an init.
//
// Reaping: no thread, and no goroutine, per child. One goroutine per
// container, the watcher, holds an epoll set with every child's pidfd and
// readiness pipe; it reads the messages as they come, and when a pidfd
// becomes readable, it tells the loop, which reaps the child with wait4.
// (Where the set cannot be had, each child has two goroutines of its own,
// waiting on its pidfd and reading its pipe in Go's network poller.)
//
// Services one at a time: a service can be added ([Container.AddService]),
// removed, replaced blue/green or rolling ([Container.ReplaceService]),
// scaled, stopped and started without touching the others. A service with
// a Port is never run twice at once per instance: its restarts stop the old
// process before starting the new one.
//
// A [Controller] runs one container for a configuration: persistent
// services (vigil's supervisor) first and last; the others together, each
// of them failing alone unless Required; Reload applies a new
// configuration by difference.
//
// The package is Linux-only (pidfd_open and waitid(P_PIDFD): Linux 5.4 or
// later); elsewhere starting a container fails with [ErrUnsupported].
package container
