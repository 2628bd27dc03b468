//go:build linux

package main

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of /proc/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// machineCPU is the time all CPUs spent busy, idle and stolen (by the
// hypervisor) since boot, from the first line of /proc/stat: idle and
// iowait are idle; user, nice, system, irq and softirq busy (guest time
// is counted in user time already).
type machineCPU struct{ busy, idle, steal time.Duration }

// readMachineCPU reads it; zero if /proc/stat cannot be read.
func readMachineCPU() machineCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 9 || string(fields[0]) != "cpu" {
		return machineCPU{}
	}
	var m machineCPU
	// user nice system idle iowait irq softirq steal [guest guest_nice]
	for i, f := range fields[1:9] {
		ticks, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return machineCPU{}
		}
		switch d := time.Duration(ticks) * clockTick; i {
		case 3, 4:
			m.idle += d
		case 7:
			m.steal += d
		default:
			m.busy += d
		}
	}
	return m
}

// since is what the machine's CPUs did from m0 to m.
func (m machineCPU) since(m0 machineCPU) machineCPU {
	return machineCPU{busy: m.busy - m0.busy, idle: m.idle - m0.idle, steal: m.steal - m0.steal}
}

// startCost is what one start-up (the floor's or vigil's) cost the
// machine: its CPUs' busy and idle time from the start until the last
// worker was ready, the workers' own CPU time by then, and this
// command's (the floor's spawner; during vigil's start-up, only the
// reading of the workers' stamps).
type startCost struct {
	machine       machineCPU
	workers, self time.Duration
}

// workersCPU is the CPU time of the processes pids (their threads').
func workersCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		total += threadsCPU(pid)
	}
	return total
}
