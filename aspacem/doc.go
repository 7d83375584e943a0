// Package aspacem is reachvm's address-space manager: a sorted map of
// segments covering the whole address space of the process, free space
// included, that records every change the library makes, advises where to
// place new mappings, and checks itself against the kernel's own view.
//
// Valgrind's aspacemgr is the model; unlike it, lookups, updates and
// placement advice are O(log n) with no cap on the number of segments.
package aspacem
