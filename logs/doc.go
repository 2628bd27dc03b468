// Package logs keeps what child processes write: it captures their stdout
// and stderr without ever blocking them, keeps the last lines of each
// instance in memory, and sends every line to the console, to rotated
// files and to the systemd journal.
//
// A [Hub] is the whole: its owner (the container) calls [Hub.Capture] for
// each child process it starts, with the read ends of the child's stdout
// and stderr pipes, and gets a [Capture]. On Linux one goroutine of the
// hub reads every pipe (an epoll set of its own: a pipe is armed for one
// event when a read found it empty, and otherwise read on a timer, up to
// 100 ms apart for a child writing at a steady pace, with a wide margin
// before its pipe could fill; a chatty child's writes cost nothing in
// between, and the timers of many children share wake-ups; elsewhere a
// goroutine per stream). It frames lines (cutting those longer than
// [Options.MaxLine]), stamps each read's lines with the time they
// arrived, and hands them on as one batch:
//
//   - to the capture's rings, the last [Settings.RingLines] lines of each
//     stream, which [Hub.Lines] queries (by service, instance, stream,
//     time, count; the current process or the previous one of each
//     instance, merged in the order they were read);
//   - to the followers of [Hub.Follow], each with a bounded buffer: a slow
//     follower loses lines and is told how many;
//   - to the destinations its service's [Settings] turn on: the console
//     (text "web.1 | line" or JSON), one file per service, instance and
//     stream, rotated by size, and the journal (native protocol). Each (the
//     files together) has a bounded queue and a goroutine of its own: one
//     that falls behind drops lines, counted per capture
//     ([Capture.Stats]), and never holds up the reader or the others.
//
// Nothing the reader does waits on anything but the pipe, so a child never
// waits on vigil. A capture ends at the end of both streams; a grandchild
// may hold a pipe open after the child has exited, so [Capture.Wait] takes
// a context that bounds the wait, and [Capture.Close] ends it at once.
// [Hub.Close] stops the destinations within a deadline.
//
// [Writer] is the bounded writer for vigil's own output: a Write that
// never blocks, one goroutine that writes, and a Close that gives up when
// its context ends.
//
// The package imports nothing of vigil.
package logs
