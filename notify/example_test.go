package notify_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/vigild/vigil/notify"
)

// A parent reads its child's messages; garbage is skipped.
func ExampleReader() {
	child := strings.NewReader("{\"status\":\"Preparing...\"}\nnot json\n{\"ready\":true}\n")
	rd := notify.NewReader(child, nil)
	for {
		m, err := rd.Next()
		if err == io.EOF {
			break
		}
		fmt.Printf("ready=%v status=%q\n", m.IsReady(), m.Status)
	}
	fmt.Println("skipped", rd.Skipped())
	// Output:
	// ready=false status="Preparing..."
	// ready=true status=""
	// skipped 1
}

// A child tells whatever started it that it is ready. With no notify
// variable set, NewOrNop stays silent.
func ExampleNewOrNop() {
	env := map[string]string{}
	c, err := notify.NewOrNop(func(k string) string { return env[k] })
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println(notify.Ready(c, "Running with 4 children."))
	// Output: <nil>
}
