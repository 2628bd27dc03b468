package logs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
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
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := h.Close(ctx); err != nil {
				t.Fatal(err)
			}
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
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
