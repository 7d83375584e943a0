package vmm

import "github.com/reachvm/reachvm/mem"

// Populating the Go heap ahead of a translator's records.
//
// A translator that records every fragment it makes (the fragment, its
// exits, its marks) grows the Go heap by about a kilobyte a fragment, and
// each new page of it costs a page fault on first touch: several
// microseconds where the kernel runs paravirtualised. The Go runtime
// places new spans at the lowest free pages of its heap, so the pages
// just past the latest allocation are the next ones it hands out:
// populating a stretch of them costs one madvise instead of a fault per
// page.
//
// The runtime maps its heap arenas (address space it reserves for the
// heap alone) a chunk at a time from their start (mheap.grow maps whole
// palloc chunks of 4 MiB), so the rest of the chunk of a live heap object
// is mapped, writable, and holds nothing but Go's heap.

// goHeapChunk is the runtime's palloc chunk (pallocChunkBytes), the unit
// in which it maps its heap.
const goHeapChunk = 4 << 20

// goHeapRange returns the stretch PopulateGoHeap populates for at and
// size: from at's page to at+size rounded up to a page, cut at the end of
// at's heap chunk.
func goHeapRange(at, size uintptr) (from, to uintptr) {
	from = mem.AlignDown(at, mem.PageSize)
	to = mem.AlignDown(at, goHeapChunk) + goHeapChunk
	if to < from {
		to = ^uintptr(0) &^ (mem.PageSize - 1) // the address space's last chunk
	}
	if end, ok := mem.AlignUp(at+size, mem.PageSize); ok && at+size >= at && end < to {
		to = end
	}
	return from, to
}

// PopulateGoHeap makes the Go heap's pages from at's page for size bytes
// present and writable, stopping at the end of the chunk the runtime
// mapped at's heap in, so that the allocations it places there next take
// no page fault, and returns where the stretch ends. It is advice, for a
// caller about to allocate much: the pages' contents do not change, and
// an OS that cannot populate (a kernel before Linux 5.14, Windows)
// returns ErrNotSupported.
//
// Preconditions: at is the address of a live Go heap object (not a
// stack, a global or memory outside Go's heap).
func (v *VMM) PopulateGoHeap(at, size uintptr) (end uintptr, err error) {
	from, to := goHeapRange(at, size)
	if from == to {
		return to, nil
	}
	return to, mem.Populate(v.os, from, to-from, true)
}
