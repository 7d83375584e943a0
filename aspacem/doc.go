// Package aspacem is reachvm's address-space manager: a sorted map of
// segments covering the whole address space of the process, free space
// included, that records every change the library makes, advises where to
// place new mappings, and checks itself against the kernel's own view.
//
// Valgrind's aspacemgr is the model; unlike it, lookups, updates and
// placement advice are O(log n) with no cap on the number of segments
// (Valgrind keeps a sorted array capped at 30,000 segments, changes it in
// O(n) with a full preen, and first-fits in O(n)).
//
// # Model
//
// A Map covers [Config.Lo, Config.Hi) with segments (Segment) that never
// overlap and leave no gap; free space is KindFree segments. Kinds say who
// owns memory: reachvm's own reservations, anonymous memory, private file
// views and shared-object views are "owned"; everything else that is
// mapped (the application, the Go runtime, system libraries) is
// KindForeign, loaded from the OS by Load and Refresh.
//
// The layers above tell the map about every change they make, after making
// it: map at the address Advise gave, then Update. The map never asks the
// kernel on its own. SyncCheck is the Valgrind sync check: it compares the
// owned ranges with the kernel's view (os.Regions) and reports every
// difference, which makes the map the test oracle for every layer above
// (docs/ARCHITECTURE.md invariant 3: accounting).
//
// # Indexes
//
// Segments live in a github.com/google/btree BTreeG keyed by start
// address; adjacent segments with identical attributes (and contiguous
// file offsets) are merged on every Update, locally at the two ends of the
// change. Free segments are also indexed by an augmented treap keyed by
// address whose nodes carry the largest gap in their subtree; Advise
// descends it from the preferred address both ways, skipping subtrees
// whose gaps are all too small (see Advise for the exact definition of
// "nearest" and the complexity).
//
// # Output
//
// WriteMaps prints the map in /proc/self/maps format with an owner
// annotation on every owned line ("[vmcode]", "[privlib libdemo.so]",
// "[grid slot 17/3277]"), so that existing tools read it.
//
// A Map is safe for concurrent use.
package aspacem
