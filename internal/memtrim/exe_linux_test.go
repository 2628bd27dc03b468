//go:build linux

package memtrim

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestExeReadOnly(t *testing.T) {
	maps, err := readSmaps("testdata/smaps")
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 7 {
		t.Fatalf("%d mappings read, want 7: %+v", len(maps), maps)
	}
	if m := maps[0]; m.start != 0x400000 || m.end != 0xb43000 || m.perms != "r-xp" || m.dev != "fe:00" || m.inode != 10002610 || m.rss != 6412<<10 || m.anon != 0 {
		t.Fatalf("first mapping read as %+v", m)
	}
	got := exeReadOnly(maps, "fe:00", 10002610)
	// The text and the read-only data; not the writable data, not the
	// relocated table (pages of its own), not another device's file, not
	// a shared mapping.
	if len(got) != 2 || got[0].start != 0x400000 || got[1].start != 0xb43000 {
		t.Fatalf("picked %+v, want the r-xp and the first r--p mapping", got)
	}
}

func TestReadSmapsRefusesGarbage(t *testing.T) {
	path := t.TempDir() + "/smaps"
	if err := writeFile(path, "zzzz-0400 r-xp 00000000 fe:00 12 /bin/x\nRss: 4 kB\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := readSmaps(path); err == nil {
		t.Fatal("a mapping whose range is not hexadecimal was read")
	}
}

// exeResident is how much of the executable's read-only mappings is
// resident now.
func exeResident(t *testing.T) int64 {
	t.Helper()
	maps, err := ownExeReadOnly()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, m := range maps {
		n += m.rss
	}
	return n
}

func TestTrimDropsTheExecutablesPages(t *testing.T) {
	if _, err := work(); err != nil { // some of the binary resident
		t.Fatal(err)
	}
	before := exeResident(t)
	if before < 256<<10 {
		t.Skipf("only %d bytes of the test binary resident", before)
	}
	r, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	after := exeResident(t)
	t.Logf("resident: %d KiB before, %d KiB after (%d KiB dropped)", before>>10, after>>10, r.Mapped>>10)
	if r.Mapped < before/2 {
		t.Errorf("dropped %d bytes of %d resident", r.Mapped, before)
	}
	if after >= before {
		t.Errorf("as much resident after the trim (%d bytes) as before (%d)", after, before)
	}
}

func writeFile(path, s string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(s))
	return err
}
