package supervisor

import (
	"bytes"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirWatch tells when an entry of one name in a directory is created,
// deleted or renamed (an inotify watch), so that the socket is checked
// when something happened to its file rather than on a timer that wakes an
// idle supervisor.
type dirWatch struct {
	f       *os.File
	changed chan struct{} // one pending notice at most
	lost    chan struct{} // closed when the watch ends (directory gone, read error)
	wg      sync.WaitGroup
}

// watchEntry watches the entry name of dir; nil when inotify cannot (no
// instance left, a file system without it).
func watchEntry(dir, name string) *dirWatch {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil
	}
	w := &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), changed: make(chan struct{}, 1), lost: make(chan struct{})}
	w.wg.Go(func() { w.read([]byte(name)) })
	return w
}

// read passes on the events that concern name until the watch ends or is
// closed.
func (w *dirWatch) read(name []byte) {
	defer close(w.lost)
	buf := make([]byte, 4096)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			switch {
			case ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_Q_OVERFLOW) != 0:
				if ev.Mask&unix.IN_Q_OVERFLOW == 0 {
					return // the directory is gone or elsewhere: the watch is over
				}
				w.notify() // events were lost: check
			case bytes.Equal(bytes.TrimRight(nameBytes, "\x00"), name):
				w.notify()
			}
		}
	}
}

func (w *dirWatch) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// close ends the watch and its reader.
func (w *dirWatch) close() {
	w.f.Close() // the pending Read returns
	w.wg.Wait()
}
