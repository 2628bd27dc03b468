// Package container runs and watches child processes: the controller and
// containers of vigil, after Ruby's async-container.
//
// A [Container] runs the children of a set of [Spec]s (each spec is a service
// with Count instances). Every child is an executable started with its own
// process group, a parent-death signal (SIGKILL), its standard output and
// error piped to a shared, bounded, line-prefixing writer (`web.2 | ...`), and
// a readiness pipe on file descriptor 3 named by NOTIFY_PIPE=3, on which it
// writes the JSON messages of package notify.
//
// Readiness clocks: every message from a child resets its clock. Before the
// child is ready, Spec.StartupTimeout applies; after, Spec.HealthCheckTimeout.
// The clocks are checked once a second by one ticker per container (none at
// all when no service has a timeout). A [Policy] decides what happens when a
// clock fails (the [DefaultPolicy] kills the child) and when a child exits.
//
// Restart: a child whose Spec.Restart is set is restarted when it exits. The
// first failure of an instance restarts it at once; each further failure of
// an instance that lived less than Spec.StableAfter waits a delay that starts
// at Spec.RestartDelay and doubles up to Spec.RestartDelayMax, with jitter.
//
// Stopping escalates per child: SIGINT to its process group, wait
// Spec.GracefulStop, SIGTERM, wait again, SIGKILL. When a child's main process
// exits, whatever is left of its process group is killed before it is reaped,
// so nothing of a child outlives it.
//
// Reaping: no OS thread per child. Each child is watched through a pidfd
// registered with Go's network poller; when it becomes readable the child is
// reaped with wait4. All children of a container are started from one
// goroutine locked to its OS thread for the container's lifetime, because
// Linux delivers the parent-death signal when the creating thread exits, not
// the process.
//
// A [Controller] owns containers: it starts persistent services first (such
// as vigil's supervisor), then the rest; Reload starts a new container beside
// the old one (blue/green) and stops the old one only once the new one is
// ready; on stop, persistent services go last.
//
// The package is Linux-only (pidfd_open and waitid(P_PIDFD): Linux 5.4 or
// later); elsewhere starting a container fails with [ErrUnsupported].
package container
