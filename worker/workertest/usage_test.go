package workertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigild/vigil/rpc"
	"github.com/vigild/vigil/worker"
	"github.com/vigild/vigil/worker/workertest"
)

// TestWorkerAuthorUsage is what a worker author writes: the program
// registers and answers its own operation.
func TestWorkerAuthorUsage(t *testing.T) {
	sup := workertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := worker.Start(ctx, worker.Options{
		Socket: sup.Path,
		Handlers: rpc.Handlers{"ping": func(ctx context.Context, call *rpc.Call) error {
			return call.Finish(map[string]any{"pong": true})
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	reg, err := sup.WaitRegistration(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := sup.Call(ctx, reg.ConnectionID, "ping", nil, nil)
	if err != nil || !reply.GetBool("pong") {
		t.Errorf("ping: %v %v", err, reply)
	}
	if reg.ProcessID() == 0 || reg.State["name"] == "" {
		t.Errorf("registered state = %v", reg.State)
	}
}
