//go:build linux

package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// mapping is one of /proc/self/smaps' entries, as far as Trim needs it.
type mapping struct {
	start, end uint64
	perms      string
	dev        string // MAJOR:MINOR, hexadecimal
	inode      uint64
	rss, anon  int64 // bytes
}

// dropExecutable drops the executable's read-only mappings that hold no
// page of their own from the page tables (madvise MADV_DONTNEED), and
// returns how much of them was resident.
func dropExecutable() (int64, error) {
	maps, err := ownExeReadOnly()
	if err != nil {
		return 0, err
	}
	var dropped int64
	for _, m := range maps {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return dropped, fmt.Errorf("memtrim: madvise %x-%x: %w", m.start, m.end, errno)
		}
		dropped += m.rss
	}
	return dropped, nil
}

// ownExeReadOnly is exeReadOnly of this process's mappings and its
// executable.
func ownExeReadOnly() ([]mapping, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return nil, fmt.Errorf("memtrim: the executable: %w", err)
	}
	maps, err := readSmaps("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	return exeReadOnly(maps, fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev)), st.Ino), nil
}

// exeReadOnly picks, of maps, the mappings of the file dev:inode that are
// read-only, private, and hold no anonymous page.
func exeReadOnly(maps []mapping, dev string, inode uint64) []mapping {
	var out []mapping
	for _, m := range maps {
		if m.inode != inode || m.dev != dev || len(m.perms) != 4 || m.perms[0] != 'r' || m.perms[1] != '-' || m.perms[3] != 'p' || m.anon != 0 {
			continue
		}
		out = append(out, m)
	}
	return out
}

// readSmaps reads the mappings of an smaps file: each one's range,
// permissions, file, and its resident and anonymous sizes.
func readSmaps(path string) ([]mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var maps []mapping
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		fields := bytes.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if k := fields[0]; k[len(k)-1] == ':' { // "Rss:    123 kB"
			if len(maps) == 0 || len(fields) < 2 {
				continue
			}
			m := &maps[len(maps)-1]
			switch string(k) {
			case "Rss:":
				m.rss = kib(fields[1])
			case "Anonymous:":
				m.anon = kib(fields[1])
			}
			continue
		}
		if len(fields) < 5 {
			continue // VmFlags and the like have a colon; anything else is unknown
		}
		start, end, ok := bytes.Cut(fields[0], []byte{'-'})
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(string(start), 16, 64)
		e, err2 := strconv.ParseUint(string(end), 16, 64)
		ino, err3 := strconv.ParseUint(string(fields[4]), 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || e < s {
			return nil, fmt.Errorf("memtrim: %s: a mapping not understood: %q", path, line)
		}
		maps = append(maps, mapping{start: s, end: e, perms: string(fields[1]), dev: string(fields[3]), inode: ino, anon: -1})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: %s: %w", path, err)
	}
	return maps, nil
}

// kib reads a size in kB; -1 if it is not a number.
func kib(b []byte) int64 {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return -1
	}
	return n << 10
}
