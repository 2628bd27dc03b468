// Package epollset is an epoll set of a goroutine's own, waited on inside
// Go's runtime poller (the set's descriptor is itself in the runtime's
// epoll set, which reports it readable when one of its descriptors is),
// with an eventfd that other goroutines write to wake the waiter, and the
// raw system calls a goroutine serving such a set makes.
//
// Both of vigil's pollers use it: package logs' reader of the children's
// output pipes, and package container's watcher of the children's exits
// and readiness pipes. The goroutine never blocks in a system call: it
// parks in the runtime poller until the set has an event, a deadline
// passes, or it is woken.
//
// The system calls made while serving (reads of non-blocking descriptors,
// epoll_wait asking only for the events at hand, epoll_ctl, waitid with
// WNOHANG) never block, and are made raw, outside the scheduler's system
// call state: entering that state when the process was idle wakes the
// runtime's monitor thread (sysmon), which then polls every 20 µs while
// the process is busy, so a wake-up of a poller reading a hundred pipes
// would cost tens of context switches more.
//
// A waker must clear the wake-up before it takes the work the wake-up
// announced (ClearWake, then take the queue): cleared after, it could
// clear the wake-up of work queued in between, which would then wait
// until something else woke the set.
//
// Linux only.
package epollset
