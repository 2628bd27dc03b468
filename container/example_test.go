//go:build linux

package container_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/vigild/vigil/container"
)

// A container runs a program that knows nothing of vigil; its output is
// prefixed with the service name and instance.
func ExampleContainer() {
	c, err := container.NewContainer([]container.Spec{{
		Name:      "hello",
		Command:   []string{"sh", "-c", "echo hello from $NOTIFY_PIPE"},
		Readiness: container.ReadyStarted, // ready once running
	}}, container.Options{Output: os.Stdout})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Start(); err != nil {
		fmt.Println(err)
		return
	}
	for c.Children()[0].State != container.StateExited {
		time.Sleep(10 * time.Millisecond)
	}
	_ = c.Stop(context.Background()) // flushes the output
	fmt.Println(c.Children()[0].LastExit)
	// Output:
	// hello.0 | hello from 3
	// exit 0
}
