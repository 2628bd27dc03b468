// Package monitor provides the supervisor's monitors: [Memory], which
// enforces memory limits on the registered workers (per process, in total,
// and the host's free memory) and detects leaks, and [Process], which
// captures and logs the metrics of the process tree under the controller.
//
// Both implement [supervisor.Monitor]: give them to a [supervisor.Server].
// Their loops wake at aligned intervals (multiples of the interval on the
// wall clock), survive a failing check (it is logged) and stop with their
// context. Status reads the last check's figures and never reads /proc.
package monitor
