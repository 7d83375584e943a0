package jit

import "unsafe"

// The translator's records (about a kilobyte a fragment) grow the Go
// heap a page fault at a time: 4,100 of the 5,600 faults of python3's
// start-up. Why populating the pages past the latest fragment works is
// vmm.PopulateGoHeap's to say (vmm/goheap.go).

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
