#!/usr/bin/env python3
"""Writes the fixture trees of testdata/. Run from testdata/: python3 gen.py.
The files are checked in; this script documents how they were made."""
import os, shutil

MEMINFO = """MemTotal:        8000000 kB
MemFree:         1000000 kB
MemAvailable:    4000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
"""

ROLLUP = """55d0c0a00000-7ffc8d5f1000 ---p 00000000 00:00 0                          [rollup]
Rss:               {rss} kB
Pss:               {pss} kB
Pss_Dirty:          {pd} kB
Pss_Anon:           {pd} kB
Pss_File:            375 kB
Pss_Shmem:             0 kB
Shared_Clean:       {sc} kB
Shared_Dirty:          8 kB
Private_Clean:        {pc} kB
Private_Dirty:       {pd} kB
Referenced:         {rss} kB
Anonymous:           {pd} kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                 12 kB
SwapPss:               6 kB
Locked:                0 kB
"""

MAPLINE = "7f1c2a000000-7f1c2a021000 r--p 00000000 08:01 1311 /usr/lib/x86_64-linux-gnu/libc.so.6\n"


def stat(pid, comm, state, ppid, pgrp, minflt, majflt, utime, stime, start, vsize, rss):
    f = [pid, f"({comm})", state, ppid, pgrp, pgrp, 0, -1, 4194304, minflt, 0, majflt, 0,
         utime, stime, 0, 0, 20, 0, 1, 0, start, vsize, rss, "18446744073709551615",
         94869159911424, 94869159931305, 140732663441056, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0,
         0, 0, 0, 0, 94869159947312, 94869159948928, 94870056464384, 140732663446209,
         140732663446229, 140732663446229, 140732663447531, 0]
    return " ".join(str(x) for x in f) + "\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def process(root, pid, comm, ppid, pgrp, cmdline, state="S", utime=300, stime=100,
            start=50000, rss=2500, mem=True, maps=3, stat_file=True):
    d = f"{root}/{pid}"
    os.makedirs(d, exist_ok=True)
    if stat_file:
        write(f"{d}/stat", stat(pid, comm, state, ppid, pgrp, 1000 + pid, pid % 7,
                                utime, stime, start, 100 * 4096 * 1000, rss))
    write(f"{d}/statm", f"100000 {rss} 300 10 0 2000 0\n")
    write(f"{d}/cmdline", "".join(a + "\0" for a in cmdline))
    if mem:
        write(f"{d}/smaps_rollup", ROLLUP.format(rss=rss * 4, pss=rss * 2, sc=rss * 2, pc=rss, pd=rss - 8))
        write(f"{d}/maps", MAPLINE * maps)
    else:
        write(f"{d}/smaps_rollup", "")
        write(f"{d}/maps", "")


def main():
    shutil.rmtree("proc", ignore_errors=True)
    write("proc/uptime", "1000.00 1800.00\n")
    write("proc/meminfo", MEMINFO)
    process("proc", 1, "init", 0, 1, ["/sbin/init"])
    # The tree under 100: 101 (child), 102 (grandchild), 50 (great-grandchild
    # with a lower pid, as after pid wrap-around), 103 (vanished: no stat),
    # 104 (zombie: no cmdline, no address space).
    process("proc", 100, "vigil", 1, 100, ["vigil", "run"], utime=3000, stime=1000, start=50000)
    process("proc", 101, "worker (1)) x", 100, 100, ["ruby", "worker.rb", "--name", "a b"], maps=195)
    process("proc", 102, "grandchild", 101, 100, ["sleep", "300"], rss=10)
    process("proc", 50, "wrapped", 102, 100, ["wrapped"])
    process("proc", 103, "vanished", 100, 100, ["vanished"], stat_file=False)
    process("proc", 104, "defunct-one", 100, 100, [], state="Z", rss=0, mem=False)
    process("proc", 200, "other", 1, 200, ["other"])
    process("proc", 201, "other-child", 200, 200, ["other-child"])

    # cgroup fixtures: <name>/proc/{meminfo,self/cgroup}, <name>/sys/...
    for name in ["cgroup1-limit", "cgroup1-nolimit", "cgroup2-limit", "cgroup2-nolimit",
                 "cgroup2-namespaced", "cgroup2-bad", "nocgroup"]:
        shutil.rmtree(name, ignore_errors=True)
        write(f"{name}/proc/meminfo", MEMINFO)
    v1self = "9:name=systemd:/\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    huge = "9223372036854771712\n"
    write("cgroup1-limit/proc/self/cgroup", v1self)
    write("cgroup1-limit/sys/memory/memory.limit_in_bytes", huge)
    write("cgroup1-limit/sys/memory/memory.usage_in_bytes", "6000000000\n")
    write("cgroup1-limit/sys/memory/docker/abc/memory.limit_in_bytes", "536870912\n")
    write("cgroup1-limit/sys/memory/docker/abc/memory.usage_in_bytes", "134217728\n")
    write("cgroup1-nolimit/proc/self/cgroup", v1self)
    write("cgroup1-nolimit/sys/memory/memory.limit_in_bytes", huge)
    write("cgroup1-nolimit/sys/memory/memory.usage_in_bytes", "6000000000\n")
    write("cgroup1-nolimit/sys/memory/docker/abc/memory.limit_in_bytes", huge)
    write("cgroup1-nolimit/sys/memory/docker/abc/memory.usage_in_bytes", "134217728\n")

    # v2: the service has no limit of its own, its slice has 256 MiB with
    # 200 MiB used.
    write("cgroup2-limit/proc/self/cgroup", "0::/system.slice/app.service\n")
    write("cgroup2-limit/sys/cgroup.controllers", "cpu memory pids\n")
    write("cgroup2-limit/sys/system.slice/memory.max", "268435456\n")
    write("cgroup2-limit/sys/system.slice/memory.current", "209715200\n")
    write("cgroup2-limit/sys/system.slice/app.service/memory.max", "max\n")
    write("cgroup2-limit/sys/system.slice/app.service/memory.current", "104857600\n")
    write("cgroup2-nolimit/proc/self/cgroup", "0::/system.slice/app.service\n")
    write("cgroup2-nolimit/sys/cgroup.controllers", "cpu memory pids\n")
    write("cgroup2-nolimit/sys/system.slice/memory.max", "max\n")
    write("cgroup2-nolimit/sys/system.slice/memory.current", "209715200\n")
    write("cgroup2-nolimit/sys/system.slice/app.service/memory.max", "max\n")
    write("cgroup2-nolimit/sys/system.slice/app.service/memory.current", "104857600\n")
    # A container whose cgroup mount is its own cgroup: the host path of
    # self/cgroup does not exist under the mount; usage above the limit.
    write("cgroup2-namespaced/proc/self/cgroup", "0::/kubepods/pod1/c1\n")
    write("cgroup2-namespaced/sys/memory.max", "536870912\n")
    write("cgroup2-namespaced/sys/memory.current", "600000000\n")
    write("cgroup2-bad/proc/self/cgroup", "0::/app\n")
    write("cgroup2-bad/sys/app/memory.max", "lots\n")
    write("cgroup2-bad/sys/app/memory.current", "1\n")


main()
