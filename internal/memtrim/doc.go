// Package memtrim gives back what a long-running vigil process holds
// without using it once it is up: the heap its start-up freed (returned to
// the kernel) and the pages of its own executable that start-up touched
// (package initialisation, configuration, flag parsing: code and tables an
// idle daemon no longer runs), dropped from the process's page tables.
//
// The executable's pages stay in the page cache; a page the process needs
// again is mapped again on its first use (a minor fault), so trimming costs
// nothing but those faults. What it changes is what the process holds:
// its resident set, and its proportional share of the binary, shrink to
// what it really runs, and the pages it no longer maps are the first the
// kernel may reclaim under pressure.
//
// Only mappings of the executable that are read-only and hold no page of
// their own (no copy-on-write page: a position-independent build's
// relocated tables, a debugger's breakpoint) are dropped: for those, the
// file is what the process would read again.
package memtrim
