// Package worker is the library a supervised Go program imports to be a good
// vigil worker.
//
// It does two things, each optional and each harmless outside vigil:
//
//   - Readiness: a [Notifier] sends Ready, Status, Healthy and Stopping
//     messages up to the controller through package notify (NOTIFY_PIPE,
//     NOTIFY_SOCKET or NOTIFY_LOG). With none of those set, every call is a
//     silent no-op, so the same binary runs by hand. There is no automatic
//     heartbeat: [Notifier.Beat] sends Healthy only while a check the
//     program gives keeps passing.
//
//   - The supervisor connection: [Start] dials the supervisor socket
//     (VIGIL_SUPERVISOR_SOCKET), registers the process, serves operations
//     called through the supervisor's "forward", and reconnects with
//     jittered, growing pauses when the supervisor goes away, until its
//     context ends. It never blocks the program and never fails it because
//     of what the supervisor does.
//
// The operations served are the program's own ([Options.Handlers]) and the
// diagnostics of [Diagnostics]: thread_dump (every goroutine's stack),
// memory_dump (a heap profile), memory_sample (what was allocated during a
// window and is still live after it), scheduler_dump, garbage_profile_start
// and garbage_profile_stop, cpu_profile, trace and runtime_metrics. Any Go
// worker can so be examined through the supervisor socket, with no HTTP
// pprof port opened anywhere.
//
// Package workertest provides a fake supervisor for testing a worker.
package worker
