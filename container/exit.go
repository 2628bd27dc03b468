package container

import (
	"fmt"
	"syscall"
)

// ExitStatus is how a child's process ended, decoded from wait4.
type ExitStatus struct {
	// Code is the exit code when the process exited, or -1 when a signal
	// killed it.
	Code int `json:"code"`
	// Signal is the signal that killed it, or 0 when it exited.
	Signal syscall.Signal `json:"signal,omitempty"`
	// CoreDumped is set when the kernel wrote a core dump.
	CoreDumped bool `json:"core_dumped,omitempty"`
}

func exitStatusOf(ws syscall.WaitStatus) ExitStatus {
	switch {
	case ws.Exited():
		return ExitStatus{Code: ws.ExitStatus()}
	case ws.Signaled():
		return ExitStatus{Code: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	}
	return ExitStatus{Code: -1}
}

// Success reports an exit with code 0.
func (e ExitStatus) Success() bool { return e.Signal == 0 && e.Code == 0 }

// Segfault reports death by SIGSEGV or SIGBUS.
func (e ExitStatus) Segfault() bool { return e.Signal == syscall.SIGSEGV || e.Signal == syscall.SIGBUS }

// Aborted reports death by SIGABRT (abort(3), failed assertions).
func (e ExitStatus) Aborted() bool { return e.Signal == syscall.SIGABRT }

// Killed reports death by SIGKILL (the kernel's OOM killer, or a stop that
// had to escalate).
func (e ExitStatus) Killed() bool { return e.Signal == syscall.SIGKILL }

// String is "exit 3", "signal killed" or "signal segmentation fault (core dumped)".
func (e ExitStatus) String() string {
	if e.Signal == 0 {
		return fmt.Sprintf("exit %d", e.Code)
	}
	s := "signal " + e.Signal.String()
	if e.CoreDumped {
		s += " (core dumped)"
	}
	return s
}
