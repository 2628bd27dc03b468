//go:build linux

package container

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vigild/vigil/internal/pipeshare"
)

// Room is one limit on how many processes (threads count too) may be
// created from here, and how much of it is left.
type Room struct {
	// What the limit is: "RLIMIT_NPROC of uid 1000" or "pids.max of
	// cgroup /system.slice/vigil.service".
	What string
	// Limit is the maximum; Used what is in use now; Free the difference.
	Limit, Used, Free int
}

// String is "RLIMIT_NPROC of uid 1000: 200, 12 in use".
func (r Room) String() string {
	return fmt.Sprintf("%s: %d, %d in use", r.What, r.Limit, r.Used)
}

// ProcessRooms returns every limit on new processes in force for this
// process: RLIMIT_NPROC (counting every thread of its real uid; root is
// not held to it) and the pids.max of its cgroup and the cgroups above
// (v2, or v1's pids hierarchy).
func ProcessRooms() []Room {
	var out []Room
	var rl unix.Rlimit
	uid := os.Getuid()
	if uid != 0 && unix.Getrlimit(unix.RLIMIT_NPROC, &rl) == nil && rl.Cur != unix.RLIM_INFINITY {
		used := threadsOfUID(uid)
		out = append(out, Room{What: "RLIMIT_NPROC of uid " + strconv.Itoa(uid), Limit: int(rl.Cur), Used: used, Free: int(rl.Cur) - used})
	}
	out = append(out, cgroupPidsRooms()...)
	return out
}

// threadsOfUID counts the threads of every process whose real uid is uid.
func threadsOfUID(uid int) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := []byte(strconv.Itoa(uid))
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var realUID []byte
		threads := 0
		for _, line := range bytes.Split(b, []byte{'\n'}) {
			if v, ok := bytes.CutPrefix(line, []byte("Uid:")); ok {
				if f := bytes.Fields(v); len(f) > 0 {
					realUID = f[0]
				}
			} else if v, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
				threads, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if bytes.Equal(realUID, want) {
			n += threads
		}
	}
	return n
}

// cgroupPidsRooms reads pids.max and pids.current of this process's
// cgroup and of those above it, where the pids controller limits them.
func cgroupPidsRooms() []Room {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	var out []Room
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var root string
		switch {
		case parts[0] == "0" && parts[1] == "":
			mount, err := cgroup2Mount()
			if err != nil {
				continue
			}
			root = mount
		case strings.Contains(","+parts[1]+",", ",pids,"):
			root = "/sys/fs/cgroup/pids"
		default:
			continue
		}
		for dir := parts[2]; ; dir = filepath.Dir(dir) {
			full := filepath.Join(root, dir)
			max, err1 := os.ReadFile(filepath.Join(full, "pids.max"))
			cur, err2 := os.ReadFile(filepath.Join(full, "pids.current"))
			if err1 == nil && err2 == nil {
				m, errm := strconv.Atoi(strings.TrimSpace(string(max)))
				c, errc := strconv.Atoi(strings.TrimSpace(string(cur)))
				if errm == nil && errc == nil { // "max" is no limit
					out = append(out, Room{What: "pids.max of cgroup " + dir, Limit: m, Used: c, Free: m - c})
				}
			}
			if dir == "/" || dir == "." || dir == "" {
				break
			}
		}
	}
	return out
}

// PipePages is the share of pipe memory, in pages, that the kernel holds
// this process's user to (/proc/sys/fs/pipe-user-pages-soft; see package
// pipeshare), and the pages a new pipe takes of it (its default
// capacity); share is 0 when there is none. Past its share, every new
// pipe of the user holds 2 pages, and none may grow.
func PipePages() (share, perPipe int) {
	if share = pipeshare.Pages(); share == 0 {
		return 0, 0
	}
	return share, 16 // PIPE_DEF_BUFFERS: a buffer is a page
}

// ReserveThreads makes the Go runtime create n threads now and keep them
// idle: a process limit filled later by the children then cannot stop
// this process from getting the threads it needs (the runtime aborts when
// it cannot create one). Threads the runtime has stay with it.
func ReserveThreads(n int) {
	var started, release sync.WaitGroup
	started.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	for range n {
		done.Go(func() {
			runtime.LockOSThread() // each on a thread of its own
			started.Done()
			release.Wait()
			runtime.UnlockOSThread() // the thread goes back to the runtime, idle
		})
	}
	started.Wait()
	release.Done()
	done.Wait()
}
