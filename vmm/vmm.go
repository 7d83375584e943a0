// Package vmm reserves the regions reachvm's code and data live in and hands
// out pieces of them: vmcode, the region everything emitted code must reach
// with a rel32 displacement (the code cache, emitted routines, private
// client libraries), and vmheap, for everything else reachvm keeps in
// native memory (Alloc, CString, HeapAlloc).
//
// DynamoRIO's VMM (core/heap.c) is the model. vmcode is reserved once, up
// front, as one PROT_NONE reservation on Linux; pieces of it are handed out
// as slots by an O(1) extent allocator (two-level segregated fit, with
// boundary tags for coalescing: extent.go) and every change is recorded in
// aspacem, so that aspacem's SyncCheck can prove the library's view equals
// the kernel's.
//
// Outside vmcode and vmheap, the VMM also makes the application's memory
// (a program's image, brk area, stack and mmaps): ReserveApp, MapAppAnon,
// MapAppFile, CommitApp, ProtectApp, DecommitApp and ReleaseApp, on any
// page-aligned sub-range under Linux rules, never on anything else the
// VMM or the process owns (appmem.go).
//
// # Lifetimes
//
// Everything built on a VMM lives in its memory, so VMM.Close closes it
// first, in DynamoRIO's dr_exit order, rather than refusing while
// something is open: a tool tearing down wants one call that leaves
// nothing behind, and an error would leave it to find and close, in the
// right order, objects of layers it may not know. Upper layers register a
// closer with Track when an object is created (an embedder's own objects
// can too) and untrack when it is closed. Close refuses new slots,
// vmheap allocations and Track from the moment it starts, then closes the
// dependents by Stage: jit machines with their programs, then libraries
// (whose finalisers run while every code unit is still mapped), then
// vmcode.Code allocators with their units, then the embedder's data; then
// it releases the application memory left, vmheap and vmcode, with every
// slot nobody tracked. After that every method of the VMM, its slots and
// its dependents that would touch their memory returns an error wrapping
// ErrClosed instead, and a second Close of any of them does too; methods
// that return no error (bounds, names, counters) answer from memory the
// Go heap holds.
//
// Lock order: VMM.Close's closeMu, then each dependent's own lock (taken
// by its closer), then VMM.life, then VMM.mu or the application memory's
// lock. Close holds no VMM lock while a closer runs, so a closer can
// release its slots, and it waits for each: a Machine's closer waits for a
// Run in progress to end. A library's closer cannot wait for native calls
// into it (a call is a plain jump into its code); privload documents that
// Close must not race with calls into the library.
package vmm

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/lifetime"
	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
)

// DefaultVMCodeSize is vmcode's size on 64-bit hosts: the whole rel32
// window, where DynamoRIO defaults to 1 GiB on Linux and 512 MiB on
// Windows.
const DefaultVMCodeSize = 2 << 30

// DefaultMinVMCodeSize is the floor AllowSmaller shrinks vmcode to.
const DefaultMinVMCodeSize = 16 << 20

// DefaultVMHeapSize is vmheap's size on 64-bit hosts, as DynamoRIO's
// vmheap_size: address space only, committed as it is used.
const DefaultVMHeapSize = 8 << 30

// Config configures a VMM. The zero value is valid.
type Config struct {
	// OS is the backend; nil selects the OS the process runs on.
	OS mem.OS
	// Space is the address-space map to record changes in; nil loads one
	// from OS.
	Space *aspacem.Map
	// VMCodeSize is vmcode's size, a multiple of the OS granularity; 0
	// selects DefaultVMCodeSize.
	VMCodeSize uintptr
	// VMCodeBase is where vmcode must start; 0 lets the OS choose
	// (DynamoRIO's vm_base).
	VMCodeBase uintptr
	// VMCodeMaxOffset adds a random, granularity-aligned offset in
	// [0, VMCodeMaxOffset) to VMCodeBase, so that vmcode's address is not
	// predictable (DynamoRIO's vm_max_offset).
	VMCodeMaxOffset uintptr
	// Near, if set, places vmcode so that every byte of it is
	// rel32-reachable from every byte of the range, e.g. the main
	// executable's text (DynamoRIO's vm_base_near_app). A range of n bytes
	// leaves room for at most 2 GiB - n of vmcode: a full 2 GiB needs
	// AllowSmaller. It takes precedence over VMCodeBase.
	Near *mem.Range
	// AllowElsewhere lets the OS choose vmcode's base when VMCodeBase is
	// taken (DynamoRIO's vm_allow_not_at_base). Reported in Placement.
	AllowElsewhere bool
	// AllowSmaller shrinks vmcode by 1/16 a try, down to MinVMCodeSize,
	// when the size asked does not fit (DynamoRIO's vm_allow_smaller).
	// Reported in Placement.
	AllowSmaller bool
	// MinVMCodeSize is the floor for AllowSmaller; 0 selects
	// DefaultMinVMCodeSize.
	MinVMCodeSize uintptr
	// VMHeapSize is vmheap's size; 0 selects DefaultVMHeapSize.
	VMHeapSize uintptr
	// NoVMHeap leaves vmheap out.
	NoVMHeap bool
	// WX says whether vmcode is W^X: backed by a shared memory object
	// mapped twice, executable at vmcode and writable elsewhere at a
	// constant offset, so that no page is ever writable and executable at
	// once (docs/ARCHITECTURE.md invariant 4). The zero value, WXAuto, turns it on
	// where the platform allows it: under Linux rules a memfd, under
	// Windows rules the grid with one SEC_RESERVE pagefile section, charged
	// only for the grid slots code units hold (code units take whole grid
	// slots there); WXOn requires it; WXOff turns it off for comparison.
	WX WXMode
}

// VMM owns vmcode. It is safe for concurrent use.
type VMM struct {
	// os and space are immutable after New.
	os    mem.OS
	space *aspacem.Map
	// back makes vmcode's pages. Immutable after New.
	back backing
	// placement says how vmcode was placed. Immutable after New.
	placement Placement
	// heap is vmheap: nil with Config.NoVMHeap, and after Close. Set by
	// New and Close only, the latter with life held for writing.
	heap *Heap
	// codeBase and codeSize bound vmcode: [codeBase, codeBase+codeSize).
	// Immutable after New.
	codeBase, codeSize uintptr
	// code allocates slots inside vmcode.
	code *extentAllocator

	// closeMu serializes Close. Lock order: closeMu, then the
	// dependents' own locks (through their closers), then life.
	closeMu sync.Mutex
	// deps are the dependents Close closes before vmcode (Track).
	deps lifetime.Registry

	// life guards closing and closed. Every operation that calls the OS
	// on vmcode or vmheap holds it for reading across the call, so that
	// Close, which holds it for writing, never releases vmcode under a
	// MAP_FIXED in flight (which would then land on address space that is
	// no longer ours).
	life sync.RWMutex
	// closing is set when Close starts: new slots and vmheap allocations
	// are refused from then on, while dependents still release theirs.
	closing bool
	// closed is set once Close released vmcode.
	closed bool

	// mu guards slots. Lock order: life before mu.
	mu sync.Mutex
	// slots holds every live slot; a slot leaves it when released.
	slots map[*Slot]struct{}

	// app records application memory (appmem.go). Lock order: life
	// before app.mu; app.mu is never held with mu.
	app appMem
}

// Owner annotations recorded in aspacem.
const (
	OwnerVMCode = "vmcode"
)

// New reserves vmcode and returns a VMM that owns it.
func New(cfg Config) (*VMM, error) {
	o := cfg.OS
	if o == nil {
		o = osmem.Native()
	}
	space := cfg.Space
	if space == nil {
		var err error
		if space, err = aspacem.Load(o); err != nil {
			return nil, fmt.Errorf("vmm: loading the address space: %w", err)
		}
	}
	size := cfg.VMCodeSize
	if size == 0 {
		size = DefaultVMCodeSize
		if bits.UintSize == 32 {
			size = 256 << 20
		}
	}
	gran := o.Granularity()
	if err := mem.CheckRange("vmcode", cfg.VMCodeBase, size, gran); err != nil {
		return nil, fmt.Errorf("vmm: bad vmcode placement: %w", err)
	}
	if cfg.VMCodeMaxOffset != 0 && cfg.VMCodeBase+cfg.VMCodeMaxOffset+size < cfg.VMCodeBase {
		return nil, fmt.Errorf("vmm: bad vmcode placement: base %#x + max offset %#x + size %#x overflows", cfg.VMCodeBase, cfg.VMCodeMaxOffset, size)
	}
	pl := Placement{RequestedBase: cfg.VMCodeBase, RequestedSize: size}
	var back backing
	wx, err := resolveWX(cfg.WX)
	if err != nil {
		return nil, fmt.Errorf("vmm: %w", err)
	}
	if o.Rules() == mem.RulesWindows {
		// Windows cannot map a file over part of a reservation: vmcode is
		// the grid of separate reservations (docs/ARCHITECTURE.md section 1).
		g, err := placeGrid(o, &cfg, size, &pl)
		if err != nil {
			return nil, fmt.Errorf("vmm: reserving %#x bytes of vmcode as a grid: %w", size, err)
		}
		if back, err = newGridBacking(g, space, wx, &pl); err != nil {
			_ = g.release()
			return nil, fmt.Errorf("vmm: W^X for vmcode: %w", err)
		}
	} else {
		lin, err := place(o, space, &cfg, size, &pl)
		if err != nil {
			return nil, fmt.Errorf("vmm: reserving %#x bytes of vmcode: %w", size, err)
		}
		if back, err = newBacking(lin, space, wx, &pl); err != nil {
			_ = lin.release()
			return nil, fmt.Errorf("vmm: W^X for vmcode: %w", err)
		}
	}
	base, size := back.bounds()
	for _, seg := range back.reserved(base, size) {
		if err := space.Update(seg); err != nil {
			_ = back.release()
			return nil, fmt.Errorf("vmm: recording vmcode: %w", err)
		}
	}
	v := &VMM{
		os:        o,
		space:     space,
		back:      back,
		placement: pl,
		codeBase:  base,
		codeSize:  size,
		code:      newExtentAllocator(base, size, gran),
		slots:     make(map[*Slot]struct{}),
	}
	if !cfg.NoVMHeap {
		var err error
		if v.heap, err = newHeap(o, space, cfg.VMHeapSize); err != nil {
			// Undo vmcode: nothing of a failed New stays behind.
			if rerr := back.release(); rerr == nil {
				_ = space.Update(aspacem.Segment{Start: base, End: base + size, Kind: aspacem.KindFree})
			}
			return nil, err
		}
	}
	return v, nil
}

// OS returns the backend the VMM uses.
func (v *VMM) OS() mem.OS { return v.os }

// Space returns the address-space map the VMM records its changes in.
func (v *VMM) Space() *aspacem.Map { return v.space }

// Placement says how vmcode was placed and which fallbacks were taken.
func (v *VMM) Placement() Placement {
	p := v.placement
	p.Fallbacks = append([]string(nil), p.Fallbacks...)
	return p
}

// VMCode returns vmcode's bounds: [base, base+size).
func (v *VMM) VMCode() (base, size uintptr) { return v.codeBase, v.codeSize }

// InVMCode reports whether [addr, addr+size) lies wholly inside vmcode.
func (v *VMM) InVMCode(addr, size uintptr) bool {
	return addr >= v.codeBase && size <= v.codeSize && addr-v.codeBase <= v.codeSize-size
}

// FreeVMCode returns the number of vmcode bytes not in any slot.
func (v *VMM) FreeVMCode() uintptr { return v.code.freeBytes() }
