package procmetrics_test

import (
	"fmt"
	"slices"

	"github.com/vigild/vigil/procmetrics"
)

func ExampleSampler_Capture() {
	fs, err := procmetrics.NewFS("testdata/proc", "testdata/nocgroup/sys")
	if err != nil {
		panic(err)
	}
	s := &procmetrics.Sampler{FS: fs}
	defer s.Close()
	tree, err := s.Capture(101, true)
	if err != nil {
		panic(err)
	}
	var pids []int
	for pid := range tree {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		p := tree[pid]
		fmt.Printf("%d parent %d %q private %d maps %d\n", pid, p.ParentProcessID, p.Command,
			p.Memory.PrivateSize(), p.Memory.MapCount)
	}
	// Output:
	// 50 parent 102 "wrapped" private 5111808 maps 3
	// 101 parent 100 "ruby worker.rb --name a b" private 5111808 maps 195
	// 102 parent 101 "sleep 300" private 12288 maps 3
}

func ExampleFS_HostMemory() {
	fs, err := procmetrics.NewFS("testdata/cgroup2-limit/proc", "testdata/cgroup2-limit/sys")
	if err != nil {
		panic(err)
	}
	h, err := fs.HostMemory()
	if err != nil {
		panic(err)
	}
	fmt.Println(h.Source, h.Total>>20, "MiB limit,", h.Free>>20, "MiB free")
	// Output: cgroup2 256 MiB limit, 56 MiB free
}
