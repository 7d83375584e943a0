package vmm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// This file is vmheap's object allocator: malloc and free for the small
// buffers native code reads and writes (out-pointers, C strings, structs
// handed to a private library), which HeapAlloc would give a whole page
// each.
//
// A request of at most MaxSmallObject bytes is rounded up to one of a few
// size classes, 16-byte steps up to 128 and four to each doubling above,
// so that past 48 bytes less than a quarter of a slot is lost to rounding. A class carves
// its slots out of runs: runBytes of vmheap, aligned to runBytes, taken
// from vmheap's extent allocator and committed read-write like a page
// allocation. Every class size is a multiple of ObjectAlign and every run
// starts on a runBytes boundary, so every slot is aligned to ObjectAlign.
// A larger request is a page allocation, as HeapAlloc makes.
//
// The allocator keeps all its bookkeeping in Go memory, none inside vmheap:
// native code that writes past its buffer or after freeing it can corrupt
// other buffers, as with malloc, but never the allocator, so a double free
// or a foreign address is always refused with an error, never a crash.
//
// Finding an allocation by its address alone takes no lock: a two-level
// directory maps each run-sized piece of vmheap to the run there, or to
// nothing (then the address can only be a page allocation, listed in a
// sorted table). Each class has its own lock, so goroutines allocating
// different sizes do not contend.
//
// Memory policy: a run goes back to vmheap, and its pages to the OS, when
// its last slot is freed, except that wholly free runs are kept, each class
// its first one and any class more while all kept runs together stay within
// idleBytes, so that allocating and freeing objects in a loop, or in
// batches, makes no system call: with nothing allocated, at most idleBytes
// plus one run per class stays committed. A page allocation goes back
// when it is freed.

// MaxSmallObject is the largest request Alloc serves from a size class;
// larger ones take whole pages (granularity-rounded) of vmheap.
const MaxSmallObject = 2048

// ObjectAlign is the alignment of every address Alloc returns: malloc's on
// x86-64.
const ObjectAlign = 16

// ErrNotAllocated is wrapped by the errors of Free, HeapFree and Bytes for
// an address that is not a live allocation: never allocated, already freed,
// or inside another allocation.
var ErrNotAllocated = errors.New("not a live vmheap allocation")

// objClassSizes are the size classes, ascending.
var objClassSizes = [...]uint16{
	16, 32, 48, 64, 80, 96, 112, 128,
	160, 192, 224, 256, 320, 384, 448, 512,
	640, 768, 896, 1024, 1280, 1536, 1792, 2048,
}

// classOfSize[(n+ObjectAlign-1)/ObjectAlign] is the index of the smallest
// class that holds n bytes, for 1 <= n <= MaxSmallObject.
var classOfSize = func() (t [MaxSmallObject/ObjectAlign + 1]uint8) {
	c := 0
	for i := 1; i < len(t); i++ {
		for int(objClassSizes[c]) < i*ObjectAlign {
			c++
		}
		t[i] = uint8(c)
	}
	return t
}()

const (
	// minRunBytes is a run's size where the granularity is smaller: 1024
	// slots of the smallest class, 8 of the largest.
	minRunBytes = 16 << 10
	// leafRuns is the number of runs one directory leaf maps.
	leafRuns = 512
	// idleBytes bounds the wholly free runs the classes keep committed
	// beyond one each.
	idleBytes = 1 << 20
)

// objectHeap hands out vmheap objects (size classes) and page allocations
// and finds them again by address.
type objectHeap struct {
	// h is the heap everything lives in. Immutable.
	h *Heap
	// runBytes is a run's size and alignment: minRunBytes rounded up to
	// the granularity. Immutable.
	runBytes uintptr
	// dirBase is the runBytes boundary at or below vmheap's base that
	// the directory counts runs from. Immutable.
	dirBase uintptr
	// dir maps the run-sized piece i of vmheap, [dirBase+i*runBytes, +runBytes),
	// to the live run there: dir[i/leafRuns][i%leafRuns], nil for none. Its
	// length is immutable; a leaf is created under dirMu and then stays; an
	// entry changes under its run's class lock and is read without a lock.
	dir   []atomic.Pointer[runLeaf]
	dirMu sync.Mutex

	// idleBytes is the size of all wholly free runs, summed over the
	// classes' idle counts; it changes under a class's lock, and is read
	// without one to decide whether to keep another (a race between two
	// classes may overshoot the bound by a run).
	idleBytes atomic.Uintptr

	// classes are the size classes, in the order of objClassSizes.
	classes [len(objClassSizes)]objClass

	// pagesMu guards pages. Lock order: a class's mu, then the extent
	// allocator's and aspacem's; pagesMu is never held across either.
	pagesMu sync.Mutex
	// pages lists the live page allocations, sorted by start and
	// disjoint.
	pages []pageAlloc
}

// runLeaf is one leaf of the run directory.
type runLeaf [leafRuns]atomic.Pointer[objRun]

// objClass is one size class.
type objClass struct {
	// mu guards partial, idle and the mutable fields of every run of
	// the class.
	mu sync.Mutex
	// size is the slot size; nobj the number of slots in a run.
	// Immutable.
	size, nobj uintptr
	// partial lists the class's runs with a free slot, last freed into
	// first. Guarded by mu.
	partial *objRun
	// idle counts the wholly free runs on partial. Guarded by mu.
	idle uintptr
	// pad keeps two classes' locks off one cache line.
	_ [64]byte
}

// objRun is a run: one class's slots in runBytes of committed vmheap.
type objRun struct {
	// base is the run's start; class its class. Immutable.
	base  uintptr
	class *objClass

	// The rest is guarded by class.mu.

	// dead is set when the run leaves the directory to be released.
	dead bool
	// used counts the slots in use.
	used uintptr
	// fresh is the first slot never handed out: slots [fresh, nobj) are
	// still zero from the OS.
	fresh uintptr
	// free holds the freed slots below fresh, the last freed last.
	free []uint16
	// asked[i] is the size asked of slot i while it is in use, 0 while it
	// is free. Sizes fit: a class slot holds at most MaxSmallObject bytes.
	asked []uint16
	// prev and next link the run into class.partial.
	prev, next *objRun
}

// pageAlloc is one page allocation: size (granularity-rounded) bytes at
// start, of which asked were asked for.
type pageAlloc struct {
	start, size, asked uintptr
}

// init sets o up for h.
func (o *objectHeap) init(h *Heap) {
	o.h = h
	gran := h.os.Granularity()
	o.runBytes, _ = mem.AlignUp(uintptr(minRunBytes), gran)
	o.dirBase = mem.AlignDown(h.base, o.runBytes)
	pieces := (h.base + h.size - o.dirBase + o.runBytes - 1) / o.runBytes
	o.dir = make([]atomic.Pointer[runLeaf], (pieces+leafRuns-1)/leafRuns)
	for i := range o.classes {
		c := &o.classes[i]
		c.size = uintptr(objClassSizes[i])
		c.nobj = o.runBytes / c.size
	}
}

// runAt returns the live run holding addr, or nil.
func (o *objectHeap) runAt(addr uintptr) *objRun {
	if addr < o.dirBase {
		return nil
	}
	i := (addr - o.dirBase) / o.runBytes
	if i/leafRuns >= uintptr(len(o.dir)) {
		return nil
	}
	leaf := o.dir[i/leafRuns].Load()
	if leaf == nil {
		return nil
	}
	return leaf[i%leafRuns].Load()
}

// setRun makes r the run at base (r nil: none).
//
// Preconditions: base is a run's start inside vmheap; the class lock of
// the run there (before and after) is held.
func (o *objectHeap) setRun(base uintptr, r *objRun) {
	i := (base - o.dirBase) / o.runBytes
	leaf := o.dir[i/leafRuns].Load()
	if leaf == nil {
		o.dirMu.Lock()
		if leaf = o.dir[i/leafRuns].Load(); leaf == nil {
			leaf = new(runLeaf)
			o.dir[i/leafRuns].Store(leaf)
		}
		o.dirMu.Unlock()
	}
	leaf[i%leafRuns].Store(r)
}

// noteIdleLocked counts one wholly free run of c more (d = +1) or less
// (d = -1).
//
// Preconditions: c.mu is held.
func (o *objectHeap) noteIdleLocked(c *objClass, d int) {
	if d > 0 {
		c.idle++
		o.idleBytes.Add(o.runBytes)
		return
	}
	c.idle--
	o.idleBytes.Add(-o.runBytes)
}

// pushLocked puts r at the head of c.partial.
//
// Preconditions: c.mu is held; r is not on c.partial.
func (c *objClass) pushLocked(r *objRun) {
	r.prev, r.next = nil, c.partial
	if c.partial != nil {
		c.partial.prev = r
	}
	c.partial = r
}

// unlinkLocked takes r off c.partial.
//
// Preconditions: c.mu is held; r is on c.partial.
func (c *objClass) unlinkLocked(r *objRun) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		c.partial = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	}
	r.prev, r.next = nil, nil
}

// newRunLocked commits a run for c and lists it on c.partial.
//
// Preconditions: c.mu is held.
func (o *objectHeap) newRunLocked(c *objClass) (*objRun, error) {
	base, err := o.h.commit(o.runBytes, o.runBytes)
	if err != nil {
		return nil, err
	}
	r := &objRun{base: base, class: c, free: make([]uint16, 0, c.nobj), asked: make([]uint16, c.nobj)}
	o.setRun(base, r)
	c.pushLocked(r)
	o.noteIdleLocked(c, +1) // until alloc takes its first slot
	return r, nil
}

// alloc returns size zeroed bytes: a class slot, or pages.
func (o *objectHeap) alloc(size uintptr) (uintptr, error) {
	if size == 0 {
		return 0, errors.New("vmm: vmheap allocation of 0 bytes")
	}
	if size > MaxSmallObject {
		return o.allocPages(size)
	}
	c := &o.classes[classOfSize[(size+ObjectAlign-1)/ObjectAlign]]
	c.mu.Lock()
	r := c.partial
	if r == nil {
		var err error
		if r, err = o.newRunLocked(c); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	var i uintptr
	reused := len(r.free) > 0
	if reused {
		i = uintptr(r.free[len(r.free)-1])
		r.free = r.free[:len(r.free)-1]
	} else {
		i = r.fresh
		r.fresh++
	}
	if r.used == 0 {
		o.noteIdleLocked(c, -1)
	}
	r.asked[i] = uint16(size)
	r.used++
	if r.used == c.nobj {
		c.unlinkLocked(r)
	}
	c.mu.Unlock()
	addr := r.base + i*c.size
	if reused {
		// The slot is the caller's alone now: clear it without the lock.
		// A fresh slot is still zero from the OS.
		clear(rawmem.Bytes(addr, size))
	}
	return addr, nil
}

// free frees the allocation at addr, a class slot or pages.
func (o *objectHeap) free(addr uintptr) error {
	if addr < o.h.base || addr-o.h.base >= o.h.size {
		return fmt.Errorf("vmm: free of %#x: %w: outside vmheap [%#x, +%#x)", addr, ErrNotAllocated, o.h.base, o.h.size)
	}
	for {
		r := o.runAt(addr)
		if r == nil {
			return o.freePages(addr, 0, false)
		}
		c := r.class
		c.mu.Lock()
		if r.dead {
			// Released since runAt: the directory no longer holds it.
			c.mu.Unlock()
			continue
		}
		off := addr - r.base
		i := off / c.size
		if off%c.size != 0 || i >= r.fresh || r.asked[i] == 0 {
			c.mu.Unlock()
			return fmt.Errorf("vmm: free of %#x: %w: %s", addr, ErrNotAllocated, r.describeLocked(off))
		}
		r.asked[i] = 0
		r.free = append(r.free, uint16(i))
		if r.used == c.nobj {
			c.pushLocked(r)
		}
		r.used--
		if r.used > 0 {
			c.mu.Unlock()
			return nil
		}
		if c.idle == 0 || o.idleBytes.Load()+o.runBytes <= idleBytes {
			o.noteIdleLocked(c, +1)
			c.mu.Unlock()
			return nil
		}
		// Wholly free, and enough runs are idle: give it back. Out of
		// the directory first, so that no later lookup finds it.
		c.unlinkLocked(r)
		r.dead = true
		o.setRun(r.base, nil)
		c.mu.Unlock()
		return o.h.decommit(r.base, o.runBytes)
	}
}

// describeLocked says what the run holds at offset off, for an error.
//
// Preconditions: r.class.mu is held.
func (r *objRun) describeLocked(off uintptr) string {
	c := r.class
	i := off / c.size
	switch {
	case i < r.fresh && r.asked[i] != 0 && off-i*c.size < uintptr(r.asked[i]):
		return fmt.Sprintf("inside the %d-byte allocation at %#x", r.asked[i], r.base+i*c.size)
	case i < r.fresh && r.asked[i] != 0:
		return fmt.Sprintf("past the end of the %d-byte allocation at %#x", r.asked[i], r.base+i*c.size)
	case off%c.size != 0:
		return fmt.Sprintf("not the start of a %d-byte slot", c.size)
	default:
		return fmt.Sprintf("a free %d-byte slot (freed twice, or never allocated)", c.size)
	}
}

// bytes returns [addr, addr+size) if it lies inside one live allocation.
func (o *objectHeap) bytes(addr, size uintptr) ([]byte, error) {
	for {
		r := o.runAt(addr)
		if r == nil {
			break
		}
		c := r.class
		c.mu.Lock()
		if r.dead {
			c.mu.Unlock()
			continue
		}
		off := addr - r.base
		i := off / c.size
		if i >= r.fresh || r.asked[i] == 0 {
			c.mu.Unlock()
			return nil, fmt.Errorf("vmm: bytes [%#x, +%#x): %w: %s", addr, size, ErrNotAllocated, r.describeLocked(off))
		}
		start, asked := r.base+i*c.size, uintptr(r.asked[i])
		c.mu.Unlock()
		if addr-start >= asked {
			return nil, fmt.Errorf("vmm: bytes [%#x, +%#x): %w: past the end of the %d-byte allocation at %#x", addr, size, ErrNotAllocated, asked, start)
		}
		if size > start+asked-addr {
			return nil, fmt.Errorf("vmm: bytes [%#x, +%#x): past the end of the %d-byte allocation at %#x", addr, size, asked, start)
		}
		return rawmem.Bytes(addr, size), nil
	}
	o.pagesMu.Lock()
	p, ok := o.pageHoldingLocked(addr)
	o.pagesMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("vmm: bytes [%#x, +%#x): %w", addr, size, ErrNotAllocated)
	}
	if size > p.start+p.asked-addr {
		return nil, fmt.Errorf("vmm: bytes [%#x, +%#x): past the end of the %d-byte allocation at %#x", addr, size, p.asked, p.start)
	}
	return rawmem.Bytes(addr, size), nil
}

// allocPages commits size bytes, rounded up to the granularity, and lists
// them.
func (o *objectHeap) allocPages(size uintptr) (uintptr, error) {
	h := o.h
	if size == 0 || size > h.size {
		return 0, fmt.Errorf("vmm: vmheap allocation of %#x bytes: zero or larger than vmheap (%#x)", size, h.size)
	}
	rounded, _ := mem.AlignUp(size, h.os.Granularity())
	addr, err := h.commit(rounded, h.os.Granularity())
	if err != nil {
		return 0, err
	}
	o.insertPage(pageAlloc{start: addr, size: rounded, asked: size})
	return addr, nil
}

// insertPage lists p.
func (o *objectHeap) insertPage(p pageAlloc) {
	o.pagesMu.Lock()
	i, _ := slices.BinarySearchFunc(o.pages, p.start, func(q pageAlloc, a uintptr) int { return cmpAddr(q.start, a) })
	o.pages = slices.Insert(o.pages, i, p)
	o.pagesMu.Unlock()
}

// pageHoldingLocked returns the page allocation holding addr.
//
// Preconditions: o.pagesMu is held.
func (o *objectHeap) pageHoldingLocked(addr uintptr) (pageAlloc, bool) {
	i, found := slices.BinarySearchFunc(o.pages, addr, func(q pageAlloc, a uintptr) int { return cmpAddr(q.start, a) })
	if !found {
		if i == 0 {
			return pageAlloc{}, false
		}
		i--
	}
	p := o.pages[i]
	return p, addr-p.start < p.asked
}

// freePages frees the page allocation starting at addr. With sized, size
// rounded up to the granularity must be its size (HeapFree's contract).
func (o *objectHeap) freePages(addr, size uintptr, sized bool) error {
	o.pagesMu.Lock()
	i, found := slices.BinarySearchFunc(o.pages, addr, func(q pageAlloc, a uintptr) int { return cmpAddr(q.start, a) })
	if !found {
		holder, inside := o.pageHoldingLocked(addr)
		o.pagesMu.Unlock()
		if inside {
			return fmt.Errorf("vmm: vmheap free of %#x: %w: inside the %d-byte allocation at %#x", addr, ErrNotAllocated, holder.asked, holder.start)
		}
		return fmt.Errorf("vmm: vmheap free of %#x: %w", addr, ErrNotAllocated)
	}
	p := o.pages[i]
	if sized {
		if rounded, ok := mem.AlignUp(size, o.h.os.Granularity()); !ok || rounded != p.size {
			o.pagesMu.Unlock()
			return fmt.Errorf("vmm: vmheap free of [%#x, +%#x): the allocation there is %#x bytes", addr, size, p.size)
		}
	}
	o.pages = slices.Delete(o.pages, i, i+1)
	o.pagesMu.Unlock()
	if err := o.h.decommit(p.start, p.size); err != nil {
		// Still committed (or at least still ours): the caller may retry.
		o.insertPage(p)
		return err
	}
	return nil
}

func cmpAddr(a, b uintptr) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Alloc returns size bytes of zeroed, read-write vmheap memory aligned to
// ObjectAlign: calloc for buffers native code reads and writes. A request
// of at most MaxSmallObject bytes shares a run of vmheap with others of
// its size class; a larger one takes whole pages, as HeapAlloc. Free it
// with Free. The memory stays valid until freed or the VMM is closed; Go's
// garbage collector neither scans nor moves it, so it may hold no Go
// pointers. Safe for concurrent use. It fails with ErrClosed from the
// moment the VMM's Close starts.
func (v *VMM) Alloc(size uintptr) (uintptr, error) {
	if err := v.acquireNew(); err != nil {
		return 0, err
	}
	defer v.life.RUnlock()
	if v.heap == nil {
		return 0, ErrNoVMHeap
	}
	return v.heap.objs.alloc(size)
}

// Free frees the allocation at addr, which Alloc, CString or HeapAlloc
// returned. Like C's free, Free(0) does nothing. An address that is not
// the start of a live allocation (freed already, inside one, or not from
// vmheap) is refused with an error wrapping ErrNotAllocated, and nothing
// changes.
func (v *VMM) Free(addr uintptr) error {
	if addr == 0 {
		return nil
	}
	if err := v.acquire(); err != nil {
		return err
	}
	defer v.life.RUnlock()
	if v.heap == nil {
		return ErrNoVMHeap
	}
	return v.heap.objs.free(addr)
}

// Bytes returns the size bytes at addr as a slice, if they lie inside the
// bytes asked of one live allocation (addr need not be its start). The
// slice aliases vmheap: it is valid until the allocation is freed or the
// VMM closed, and using it afterwards may fault.
func (v *VMM) Bytes(addr, size uintptr) ([]byte, error) {
	if err := v.acquire(); err != nil {
		return nil, err
	}
	defer v.life.RUnlock()
	if v.heap == nil {
		return nil, ErrNoVMHeap
	}
	return v.heap.objs.bytes(addr, size)
}

// CString copies s into vmheap with a terminating NUL, for native code
// that takes a const char *; free it with Free. A string holding a NUL
// would be cut short there, so it is refused.
func (v *VMM) CString(s string) (uintptr, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return 0, fmt.Errorf("vmm: CString: the string holds a NUL at byte %d of %d", i, len(s))
	}
	if err := v.acquireNew(); err != nil {
		return 0, err
	}
	defer v.life.RUnlock()
	if v.heap == nil {
		return 0, ErrNoVMHeap
	}
	addr, err := v.heap.objs.alloc(uintptr(len(s)) + 1)
	if err != nil {
		return 0, err
	}
	// The memory is zeroed: the NUL is already there.
	copy(rawmem.Bytes(addr, uintptr(len(s))), s)
	return addr, nil
}
