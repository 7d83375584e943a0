package jit

import "unsafe"

// The translator's records live in the Go heap: a fragment, its exits,
// its marks and its sites take about a kilobyte, which python3's start-up
// multiplies by 17,000. Each new heap page costs a page fault on first
// touch (several microseconds under a paravirtualised kernel): 4,100 of
// the 5,600 faults of that start-up. The runtime places new spans at the
// lowest free pages of its heap, so the pages past the fragment just
// allocated are the ones the next translations fill: populating a
// stretch of them at a time (vmm.PopulateGoHeap) takes one madvise where
// the records would take a fault per page.

// heapAhead is how much of the Go heap populateHeapAhead populates past
// the translator's latest fragment. Small, because what the records do
// not reach is resident for nothing: 128 KiB leaves python3's start-up
// 2,500 faults (1 MiB: 2,000) for 0.3 MB more peak RSS (1 MiB: 1.6 MB).
const heapAhead = 128 << 10

// populateHeapAhead populates the Go heap from f's page for heapAhead
// (less at the end of a heap chunk) when f, just allocated, lies outside
// the stretch populated last or in its last quarter.
func (m *Machine) populateHeapAhead(f *fragment) {
	at := uintptr(unsafe.Pointer(f))
	if at >= m.heapFrom && at+heapAhead/4 < m.heapTo {
		return
	}
	// Advice: where it fails, the records fault their pages in as
	// they would have.
	end, _ := m.v.PopulateGoHeap(at, heapAhead)
	m.heapFrom, m.heapTo = at, end
}
