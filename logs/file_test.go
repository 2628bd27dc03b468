package logs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readLog reads a log file, gunzipping a .gz one.
func readLog(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return string(data)
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// TestFilesRotateAtSizeAndKeepCount: a child writes 200 lines of 50 bytes
// (10,000 bytes) to stdout and one to stderr; with files of 1,000 bytes and
// 2 kept, stdout's file and its two rotated ones hold the last lines in
// order, none over the size, and nothing older is left.
func TestFilesRotateAtSizeAndKeepCount(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "logs")
			set := Settings{Dir: dir, MaxSize: 1000, Keep: 2, Compress: compress}
			h := New(Options{Settings: set})
			args := []string{"err:to stderr"}
			for i := range 200 {
				args = append(args, fmt.Sprintf("out:%03d %s", i, strings.Repeat("x", 45)), "sleep:100us")
			}
			ch := startChild(t, "script", args...)
			c := h.Capture(ch.id("web", 3), ch.stdout, ch.stderr)
			ch.wait(t)
			waitDone(t, c)
			closeHub(t, h, 20*time.Second)
			gz := ""
			if compress {
				gz = ".gz"
			}
			want := []string{"web.3.stderr.log", "web.3.stdout.log", "web.3.stdout.log.1" + gz, "web.3.stdout.log.2" + gz}
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Fatalf("files %q, want %q", got, want)
			}
			if got := readLog(t, filepath.Join(dir, "web.3.stderr.log")); got != "to stderr\n" {
				t.Errorf("stderr file: %q", got)
			}
			var all string
			for _, name := range []string{want[3], want[2], want[1]} {
				text := readLog(t, filepath.Join(dir, name))
				if len(text) > 1000 || !strings.HasSuffix(text, "\n") {
					t.Errorf("%s: %d bytes, ends %q", name, len(text), text[max(0, len(text)-5):])
				}
				all += text
			}
			lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
			// The current file holds what came after the last rotation; each
			// rotated one holds 20 lines of 50 bytes.
			first, _ := strconv.Atoi(lines[0][:3])
			for i, l := range lines {
				if want := fmt.Sprintf("%03d %s", first+i, strings.Repeat("x", 45)); l != want {
					t.Fatalf("line %d of the kept files is %q, want %q", i, l, want)
				}
			}
			if first+len(lines) != 200 || len(lines) < 40 || len(lines) > 60 {
				t.Errorf("the kept files hold lines %d to %d", first, first+len(lines)-1)
			}
		})
	}
}

// TestFileAppendsAndRotatesOnReopen: a new hub (vigil restarted) appends to
// the existing file, and rotates it when it is already full.
func TestFileAppendsAndRotatesOnReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.0.stdout.log")
	if err := os.WriteFile(path, []byte(strings.Repeat("old\n", 240)), 0o644); err != nil { // 960 bytes
		t.Fatal(err)
	}
	h := New(Options{Settings: Settings{Dir: dir, MaxSize: 1000, Keep: 1}})
	c := h.Capture(Identity{Service: "web", PID: 1}, nil, nil)
	feed(c, Stdout, "new 1\n")                                    // 966 bytes: fits
	feed(c, Stdout, "new 2\nnew 3\nnew 4\nnew 5\nnew 6\nnew 7\n") // 996 with new 6; new 7 starts a new file
	closeHub(t, h, 10*time.Second)
	old := readLog(t, path+".1")
	cur := readLog(t, path)
	if !strings.HasPrefix(old, strings.Repeat("old\n", 240)+"new 1\n") || len(old) > 1000 {
		t.Errorf("rotated file: %d bytes ending %q", len(old), old[len(old)-20:])
	}
	if cur != "new 7\n" {
		t.Errorf("current file: %q", cur)
	}
	if got := old[960:] + cur; got != "new 1\nnew 2\nnew 3\nnew 4\nnew 5\nnew 6\nnew 7\n" {
		t.Errorf("new lines across the files: %q", got)
	}
}

// TestFileLinesReachTheFileBeforeClose: the files' writer gathers lines,
// yet they reach the file while the child runs, without Close; the lines
// still queued at Close reach it then.
func TestFileLinesReachTheFileBeforeClose(t *testing.T) {
	dir := t.TempDir()
	h := New(Options{Settings: Settings{Dir: dir, MaxSize: 1 << 20, Keep: 1}})
	ch := startChild(t, "script", "out:one", "out:two", "wait", "out:three")
	c := h.Capture(ch.id("web", 0), ch.stdout, ch.stderr)
	path := filepath.Join(dir, "web.0.stdout.log")
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if string(data) == "one\ntwo\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the file holds %q, want the two lines written so far", data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := ch.stdin.Write([]byte("\n")); err != nil { // then "three", and the end
		t.Fatal(err)
	}
	ch.wait(t)
	waitDone(t, c)
	closeHub(t, h, 10*time.Second)
	if got := readLog(t, path); got != "one\ntwo\nthree\n" {
		t.Errorf("the file holds %q after Close", got)
	}
}

// TestRotFileWritesSeveralBuffers: the batches of one write go to the file
// in one writev(2) when they fit, and are cut between lines, rotating,
// when they do not.
func TestRotFileWritesSeveralBuffers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	r := &rotFile{path: path, logger: slog.New(slog.DiscardHandler)}
	r.setLimits(30, 2, false)
	// 2+3+4 lines of 4 bytes: 36 bytes in all, more than 30.
	bufs := [][]byte{[]byte("a01\na02\n"), []byte("b01\nb02\nb03\n"), []byte("c01\nc02\nc03\nc04\n")}
	if err := r.write(bufs); err != nil {
		t.Fatal(err)
	}
	if err := r.write([][]byte{[]byte("d01\n"), []byte("d02\n")}); err != nil { // fits: one writev
		t.Fatal(err)
	}
	if err := r.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	old, cur := readLog(t, path+".1"), readLog(t, path)
	if old != "a01\na02\nb01\nb02\nb03\nc01\nc02\n" {
		t.Errorf("rotated file %q", old)
	}
	if cur != "c03\nc04\nd01\nd02\n" {
		t.Errorf("current file %q", cur)
	}
}

// TestFileFollowsItsPath: an operator removes a worker's log file to free
// the disk, or moves it aside (logrotate without copytruncate). The next
// lines, a moment later, go to a new file at the path, and the old one is
// closed: removed, its space is given back. Before, every later line went
// to the removed file, whose space stayed taken while vigil ran (on a full
// disk: every line lost, for good).
func TestFileFollowsItsPath(t *testing.T) {
	dir := t.TempDir()
	h := New(Options{Settings: Settings{Dir: dir, MaxSize: 1 << 20, Keep: 1}})
	ch := startChild(t, "script", "out:one", "wait", "out:two", "wait", "out:three", "wait")
	c := h.Capture(ch.id("web", 0), ch.stdout, ch.stderr)
	path := filepath.Join(dir, "web.0.stdout.log")
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			data, _ := os.ReadFile(path)
			if string(data) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the file holds %q, want %q", data, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	next := func() {
		t.Helper()
		time.Sleep(followEvery + 100*time.Millisecond)
		if _, err := ch.stdin.Write([]byte("\n")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("one\n")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	next()
	waitFor("two\n")
	if fds := deletedOpen(t, dir); len(fds) > 0 {
		t.Errorf("the removed file is still open: %v", fds)
	}
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	next()
	waitFor("three\n")
	if got := readLog(t, path+".moved"); got != "two\n" {
		t.Errorf("the moved file holds %q", got)
	}
	ch.stdin.Close()
	ch.wait(t)
	waitDone(t, c)
	closeHub(t, h, 10*time.Second)
}

// deletedOpen lists this process's descriptors of removed files in dir.
func deletedOpen(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	var out []string
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(link, dir) && strings.HasSuffix(link, " (deleted)") {
			out = append(out, e.Name()+" -> "+link)
		}
	}
	return out
}
