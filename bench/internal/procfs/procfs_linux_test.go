package procfs

import (
	"os"
	"os/exec"
	"testing"
)

func TestStatFields(t *testing.T) {
	// A command name with spaces and a closing parenthesis.
	stat := []byte("1234 (a) b (c)) S 99 1234 1234 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 9 0\n")
	f := StatFields(stat)
	if len(f) < 13 || f[0] != "S" || f[1] != "99" || f[11] != "7" || f[12] != "5" {
		t.Fatalf("statFields = %q; want state S, ppid 99, utime 7, stime 5", f)
	}
	if StatFields([]byte("garbage")) != nil {
		t.Fatal("statFields of a line without ')' should be nil")
	}
}

func TestStatusField(t *testing.T) {
	status := []byte("Name:\tvigil\nThreads:\t11\nVmRSS:\t   12288 kB\nvoluntary_ctxt_switches:\t40\nnonvoluntary_ctxt_switches:\t2\n")
	for key, want := range map[string]int64{"Threads:": 11, "VmRSS:": 12288, "voluntary_ctxt_switches:": 40, "nonvoluntary_ctxt_switches:": 2, "Missing:": 0} {
		if got := StatusField(status, key); got != want {
			t.Errorf("StatusField(%q) = %d, want %d", key, got, want)
		}
	}
}

// FindChild, Cmdline and Zombie, on a real child of this process.
func TestChildren(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if pid := FindChild(os.Getpid(), "30"); pid != cmd.Process.Pid {
		t.Errorf("FindChild = %d, want %d", pid, cmd.Process.Pid)
	}
	if got := Cmdline(cmd.Process.Pid); got != "sleep 30" {
		t.Errorf("Cmdline = %q", got)
	}
	if Zombie(cmd.Process.Pid) {
		t.Errorf("a running child taken for a zombie")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !Zombie(cmd.Process.Pid) {
		t.Errorf("a reaped child not taken for gone")
	}
}
