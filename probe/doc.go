// Package probe checks the readiness and health of programs that know
// nothing of vigil, with Kubernetes' three kinds of probe: an HTTP GET whose
// status must fall in a range, a TCP connect, and a command that must exit 0.
//
// A [Spec] describes one probe: its kind, its interval, timeout, failure and
// success thresholds and initial delay. A [Scheduler] runs any number of them
// from one goroutine that owns a timer heap; due attempts run in batches on
// a pool of worker goroutines, at most [Options].MaxConcurrent network
// probes and [Options].MaxExec commands at once, and their [Result]s come
// back on the scheduler's [Scheduler.Results] channel. Once [Scheduler.Remove] has
// returned, no result of that probe is received any more.
//
// HTTP probes keep their connection alive between attempts and read the
// response themselves (not through net/http's Transport), so an idle probe
// holds one file descriptor and no goroutine. Commands run
// through a [Runner], which a program that reaps its own children (a
// subreaper) replaces with one that does not use os/exec's Wait.
//
// The package imports nothing of vigil.
package probe
