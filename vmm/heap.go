package vmm

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// OwnerVMHeap annotates vmheap in aspacem.
const OwnerVMHeap = "vmheap"

// Heap is vmheap: reachvm's memory for everything that need not be
// rel32-reachable (DynamoRIO's split of vmcode and vmheap, its #1132),
// reserved once and handed out by the same extent allocator as vmcode.
// Allocations are committed read-write and decommitted when freed, so the
// reservation costs address space only.
type Heap struct {
	// os and space are the VMM's. Immutable.
	os    mem.OS
	space *aspacem.Map
	// base and size bound the reservation. Immutable.
	base, size uintptr
	// alloc hands out granularity-aligned ranges; it has its own lock.
	alloc *extentAllocator
	// objs hands out objects (Alloc) and page allocations (HeapAlloc) and
	// finds them again by address; it has its own locks.
	objs objectHeap
}

// newHeap reserves size bytes (0: DefaultVMHeapSize) wherever the OS
// chooses, and records it.
func newHeap(o mem.OS, space *aspacem.Map, size uintptr) (*Heap, error) {
	if size == 0 {
		size = DefaultVMHeapSize
		if bits.UintSize == 32 {
			size = 256 << 20
		}
	}
	gran := o.Granularity()
	if err := mem.CheckRange("vmheap", 0, size, gran); err != nil {
		return nil, fmt.Errorf("vmm: bad vmheap size: %w", err)
	}
	base, err := o.Reserve(0, size, mem.Hint)
	if err != nil {
		return nil, fmt.Errorf("vmm: reserving %#x bytes of vmheap: %w", size, err)
	}
	if err := space.Update(aspacem.Segment{Start: base, End: base + size, Kind: aspacem.KindReservation, Owner: OwnerVMHeap}); err != nil {
		_ = o.Release(base, size)
		return nil, fmt.Errorf("vmm: recording vmheap: %w", err)
	}
	h := &Heap{os: o, space: space, base: base, size: size, alloc: newExtentAllocator(base, size, gran)}
	h.objs.init(h)
	return h, nil
}

// close releases the reservation. On failure nothing changes.
func (h *Heap) close() error {
	if err := h.os.Release(h.base, h.size); err != nil {
		return fmt.Errorf("vmm: releasing vmheap: %w", err)
	}
	if err := h.space.Update(aspacem.Segment{Start: h.base, End: h.base + h.size, Kind: aspacem.KindFree}); err != nil {
		return fmt.Errorf("vmm: recording vmheap's release: %w", err)
	}
	return nil
}

// ErrNoVMHeap is returned by heap operations of a VMM made with NoVMHeap.
var ErrNoVMHeap = errors.New("vmm: no vmheap")

// VMHeap returns vmheap's bounds, or zeros without one and once the VMM
// is closed.
func (v *VMM) VMHeap() (base, size uintptr) {
	v.life.RLock()
	defer v.life.RUnlock()
	if v.heap == nil {
		return 0, 0
	}
	return v.heap.base, v.heap.size
}

// HeapAlloc returns size bytes (rounded up to the granularity) of zeroed,
// read-write vmheap memory, aligned to the granularity. Free it with
// HeapFree or Free; Alloc is the allocator for small objects. It fails
// with ErrClosed from the moment the VMM's Close starts.
func (v *VMM) HeapAlloc(size uintptr) (uintptr, error) {
	if err := v.acquireNew(); err != nil {
		return 0, err
	}
	defer v.life.RUnlock()
	if v.heap == nil {
		return 0, ErrNoVMHeap
	}
	return v.heap.objs.allocPages(size)
}

// HeapFree returns [addr, addr+size), which HeapAlloc returned, to vmheap
// and its pages to the OS. size is rounded up to the granularity and must
// match the allocation's. An address that is not a page allocation's start
// is refused with an error wrapping ErrNotAllocated, a size that does not
// match with another; either way nothing changes. Once the VMM is closed,
// which released every allocation with vmheap, it fails with ErrClosed.
func (v *VMM) HeapFree(addr, size uintptr) error {
	if err := v.acquire(); err != nil {
		return err
	}
	defer v.life.RUnlock()
	if v.heap == nil {
		return ErrNoVMHeap
	}
	return v.heap.objs.freePages(addr, size, true)
}

// commit takes size bytes aligned to align from vmheap's extent allocator,
// commits them read-write and records them in aspacem. On failure nothing
// is left taken.
//
// Preconditions: size is a non-zero multiple of the granularity; align a
// multiple or divisor of it. The VMM's life is held for reading.
func (h *Heap) commit(size, align uintptr) (uintptr, error) {
	addr, err := h.alloc.alloc(OwnerVMHeap, size, align)
	if err != nil {
		return 0, err
	}
	if err := h.os.Commit(addr, size, mem.ProtRW); err != nil {
		_ = h.alloc.release(OwnerVMHeap, addr, size)
		return 0, fmt.Errorf("vmm: committing vmheap: %w", err)
	}
	if err := h.space.Update(aspacem.Segment{Start: addr, End: addr + size, Kind: aspacem.KindAnon, Prot: mem.ProtRW, Owner: OwnerVMHeap}); err != nil {
		if derr := h.os.Decommit(addr, size); derr == nil {
			_ = h.alloc.release(OwnerVMHeap, addr, size)
		}
		return 0, fmt.Errorf("vmm: recording vmheap: %w", err)
	}
	return addr, nil
}

// decommit gives [addr, addr+size), which commit returned, back to the OS
// and to vmheap's extent allocator.
//
// Preconditions: nothing uses the range any more. The VMM's life is held
// for reading.
func (h *Heap) decommit(addr, size uintptr) error {
	if err := h.os.Decommit(addr, size); err != nil {
		return fmt.Errorf("vmm: decommitting vmheap: %w", err)
	}
	if err := h.space.Update(aspacem.Segment{Start: addr, End: addr + size, Kind: aspacem.KindReservation, Owner: OwnerVMHeap}); err != nil {
		return fmt.Errorf("vmm: recording vmheap: %w", err)
	}
	return h.alloc.release(OwnerVMHeap, addr, size)
}
