package logs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/vigild/vigil/logs"
)

// A container captures each child it starts, and queries the lines later.
func ExampleHub() {
	hub := logs.New(logs.Options{Settings: logs.Settings{RingLines: 100}}) // no destination: rings only
	defer hub.Close(context.Background())

	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	cmd := exec.Command("sh", "-c", "echo hello; echo oops >&2")
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		fmt.Println(err)
		return
	}
	outW.Close()
	errW.Close()
	c := hub.Capture(logs.Identity{Service: "web", Instance: 0, PID: cmd.Process.Pid}, outR, errR)
	cmd.Wait()
	// A grandchild may hold the pipes open: read for a short grace only.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Wait(ctx)

	for _, l := range hub.Lines(logs.Query{Service: "web", Stream: logs.Stderr}) {
		fmt.Printf("%s %s: %s\n", l.Name(), l.Stream, l.Text)
	}
	fmt.Println(c.Stats().Lines, "lines,", c.Stats().Dropped(), "dropped")
	// Output:
	// web.0 stderr: oops
	// 2 lines, 0 dropped
}
