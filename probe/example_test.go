package probe_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/vigild/vigil/probe"
)

// A controller's loop adds a readiness probe for a process it started,
// receives results in its select, and removes the probe when the process
// goes.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	s := probe.New(context.Background(), probe.Options{})
	defer s.Close()
	ready, err := s.Add(probe.Spec{
		HTTP:             &probe.HTTP{URL: srv.URL + "/healthz"},
		Interval:         100 * time.Millisecond,
		SuccessThreshold: 2,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for r := range s.Results() {
		fmt.Printf("passed=%v consecutive=%d status=%v\n", r.Passed, r.Consecutive, r.Status)
		if r.Handle == ready && r.Changed && r.Status == probe.StatusPassing {
			s.Remove(ready)
			break
		}
	}

	_, err = s.Add(probe.Spec{TCP: &probe.TCP{Address: "localhost"}})
	fmt.Println(err)
	// Output:
	// passed=true consecutive=1 status=unknown
	// passed=true consecutive=2 status=passing
	// probe tcp.address: "localhost": want host:port, e.g. 127.0.0.1:8080
}
