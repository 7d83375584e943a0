// Package vmcode hands out units of vmcode for emitted code: the code
// cache's fragments and the routines the jit emits. Every unit lies inside
// vmcode, so code in one unit reaches code in any other, and every private
// library, with a rel32 displacement.
//
// Code is encoded for a unit's executable address (Exec), written through
// its writable address (Writable, or Write) and run from Exec. Under W^X
// (vmm.Config.WX, on by default where the platform allows) the two are
// different views of the same memory, DynamoRIO's and QEMU's split-wx:
// Exec is read-execute from the moment the unit is allocated and Writable
// read-write until it is freed, so no page is ever both, and writing code
// costs no protection change. Without W^X they are the same pages, written
// read-write and flipped to read-execute by Seal.
package vmcode

import (
	"errors"
	"fmt"
	"sync"

	"github.com/reachvm/reachvm/internal/lifetime"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// OwnerFcache annotates code-cache units in aspacem.
const OwnerFcache = "fcache"

// Code allocates units from a VMM's vmcode. It is safe for concurrent
// use. It is a dependent of its VMM (vmm.StageCode): the VMM's Close
// closes it.
type Code struct {
	v *vmm.VMM
	// untrack removes c from v's dependents. Immutable; nil if v was
	// closing when c was made.
	untrack func()
	// deps are the objects that run code from c's units (jit machines),
	// which Close closes before it frees the units.
	deps lifetime.Registry

	// closeMu serializes Close. Lock order: closeMu, then the dependents'
	// locks (through their closers), then Unit.mu, then mu.
	closeMu sync.Mutex
	// mu guards the fields below.
	mu sync.Mutex
	// closing is set when Close starts: Alloc refuses from then on.
	closing bool
	// closed is set once Close freed every unit.
	closed bool
	// units holds every unit allocated and not freed.
	units map[*Unit]struct{}
}

// ErrClosed is wrapped by the errors of a Code's and a Unit's methods
// once the unit is freed or the Code (or its VMM) closed;
// errors.Is(err, vmm.ErrClosed) holds for it too.
var ErrClosed = fmt.Errorf("vmcode: %w", vmm.ErrClosed)

// New returns a unit allocator over v's vmcode, tracked by v. Over a VMM
// already closing or closed it returns a Code that is closed: Alloc fails
// with ErrClosed.
func New(v *vmm.VMM) *Code {
	c := &Code{v: v, units: make(map[*Unit]struct{})}
	untrack, err := v.Track(vmm.StageCode, "vmcode allocator", c.Close)
	if err != nil {
		c.closing, c.closed = true, true
		c.deps.Drain()
		return c
	}
	c.untrack = untrack
	return c
}

// VMM returns the VMM the units come from.
func (c *Code) VMM() *vmm.VMM { return c.v }

// WX reports whether units are W^X: executable and writable at different
// addresses.
func (c *Code) WX() bool { return c.v.WX() }

// Track registers close as a dependent of c: something that runs code
// from c's units, as a jit Machine does. c.Close calls it, the latest
// tracked first, before it frees any unit, with no lock of c held, and
// waits for it. Track fails with an error wrapping ErrClosed once Close
// has started. The dependent calls untrack when it is closed by other
// means.
func (c *Code) Track(name string, close func() error) (untrack func(), err error) {
	if close == nil {
		return nil, fmt.Errorf("vmcode: tracking %q: nil close function", name)
	}
	untrack, ok := c.deps.Add(0, name, close)
	if !ok {
		return nil, fmt.Errorf("vmcode: tracking %q: %w", name, ErrClosed)
	}
	return untrack, nil
}

// Close closes c's dependents (Track), then frees every unit still
// allocated: afterwards Alloc, and every method of those units that
// touches their memory, fails with an error wrapping ErrClosed. A unit's
// Write or Seal in progress finishes first. A second Close returns
// ErrClosed.
func (c *Code) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closing = true
	c.mu.Unlock()
	errs := c.deps.CloseAll("vmcode", vmm.ErrClosed)
	c.mu.Lock()
	units := make([]*Unit, 0, len(c.units))
	for u := range c.units {
		units = append(units, u)
	}
	c.mu.Unlock()
	for _, u := range units {
		// A unit its user freed meanwhile reports ErrClosed; one the
		// VMM released with vmcode does too and is freed all the same.
		if err := u.Free(); err != nil && !errors.Is(err, vmm.ErrClosed) {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.untrack != nil {
		c.untrack()
	}
	return errors.Join(errs...)
}

// Unit is a run of committed vmcode pages for emitted code. Its methods
// must not be called concurrently with each other; different units are
// independent. Once the unit is freed (by Free, or by its Code's or VMM's
// Close, which wait for a Write or Seal in progress), Write, Seal and
// Free fail with an error wrapping ErrClosed; Exec, Writable and Size keep
// returning the addresses and size it had.
type Unit struct {
	code *Code
	slot *vmm.Slot
	// rw is the writable address of the unit's first byte: Exec() plus
	// the VMM's constant offset under W^X, Exec() otherwise.
	rw uintptr
	// wx is set when the unit's writable and executable views differ.
	wx bool
	// size is the slot's size. Immutable.
	size uintptr

	// mu guards sealed and freed, and is held across every access to
	// the unit's memory, so that a Close on another goroutine cannot
	// free the unit under a Write.
	mu sync.Mutex
	// sealed is set by Seal.
	sealed bool
	// freed is set once the unit's slot is released.
	freed bool
}

// Alloc returns a unit of at least size bytes, rounded up to the
// allocation granularity (under W^X on Windows, to the 640 KiB grid slot:
// each unit's executable view is a view of vmcode's section mapped at its
// own grid slots), ready to be written. Under W^X its executable
// view is read-execute and its writable view read-write; otherwise it is
// read-write until Seal. It fails with an error wrapping ErrClosed once
// c's Close has started.
func (c *Code) Alloc(size uintptr) (*Unit, error) {
	if c.isClosing() {
		return nil, fmt.Errorf("vmcode: allocating a unit: %w", ErrClosed)
	}
	s, err := c.v.ReserveUnit(size, OwnerFcache)
	if err != nil {
		return nil, err
	}
	wx := c.v.WX()
	prot := mem.ProtRW
	if wx {
		prot = mem.ProtRX
	}
	if err := s.Commit(s.Base(), s.Size(), prot); err != nil {
		if rerr := s.Release(); rerr != nil && !errors.Is(rerr, vmm.ErrClosed) {
			return nil, fmt.Errorf("%w (and releasing the unit: %v)", err, rerr)
		}
		return nil, err
	}
	rw, _ := c.v.Writable(s.Base())
	u := &Unit{code: c, slot: s, rw: rw, wx: wx, size: s.Size()}
	c.mu.Lock()
	if c.closing {
		// Close started after the check above and may have snapshotted
		// the units already: this one is not handed out.
		c.mu.Unlock()
		if rerr := s.Release(); rerr != nil && !errors.Is(rerr, vmm.ErrClosed) {
			return nil, fmt.Errorf("vmcode: allocating a unit: %w (and releasing it: %v)", ErrClosed, rerr)
		}
		return nil, fmt.Errorf("vmcode: allocating a unit: %w", ErrClosed)
	}
	c.units[u] = struct{}{}
	c.mu.Unlock()
	return u, nil
}

func (c *Code) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Exec returns the address code in the unit runs at: what its code is
// encoded for.
func (u *Unit) Exec() uintptr { return u.slot.Base() }

// Writable returns the address the unit's bytes are written at. Under W^X
// it stays writable for the unit's whole life, so that code can be patched
// in place (linking exits) while it runs; without W^X it is Exec and
// writable only until Seal.
func (u *Unit) Writable() uintptr { return u.rw }

// Size returns the unit's size in bytes.
func (u *Unit) Size() uintptr { return u.slot.Size() }

// Write copies b to offset off of the unit through its writable view. It
// fails after Seal in both modes, so that code that works with W^X off
// works with it on and the other way round.
func (u *Unit) Write(off uintptr, b []byte) error {
	u.mu.Lock()
	if u.freed || u.sealed || off > u.size || uintptr(len(b)) > u.size-off {
		u.mu.Unlock()
		return u.writeError(off, len(b))
	}
	copy(rawmem.Bytes(u.rw+off, uintptr(len(b))), b)
	u.mu.Unlock()
	return nil
}

// writeError says why Write refused a write of n bytes at off: kept out
// of Write, whose every call is a patch or a fragment of the jit.
func (u *Unit) writeError(off uintptr, n int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.freed:
		return fmt.Errorf("vmcode: write to the unit at %#x: %w", u.Exec(), ErrClosed)
	case u.sealed:
		return fmt.Errorf("vmcode: unit at %#x is sealed", u.Exec())
	}
	return fmt.Errorf("vmcode: write of %d bytes at offset %#x leaves the unit (%#x bytes)", n, off, u.Size())
}

// Populate makes the unit's pages under [off, off+size), rounded out to
// the page, present in both views before the first write and run, so
// that they take no page fault each (vmm.Slot.Populate): a code cache
// that fills a unit a stretch at a time populates the next stretch as it
// gets there. It is advice: where the OS cannot, it does nothing.
// It fails with an error wrapping ErrClosed once the unit is freed.
func (u *Unit) Populate(off, size uintptr) error {
	if off > u.size || size > u.size-off {
		return fmt.Errorf("vmcode: populating [%#x, +%#x) leaves the unit (%#x bytes)", off, size, u.size)
	}
	page := uintptr(mem.PageSize)
	lo, hi := mem.AlignDown(off, page), off+size
	if end, ok := mem.AlignUp(hi, page); ok {
		hi = min(end, u.size)
	}
	if hi <= lo {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.freed {
		return fmt.Errorf("vmcode: populating the unit at %#x: %w", u.Exec(), ErrClosed)
	}
	return u.slot.Populate(u.slot.Base()+lo, hi-lo, vmm.ViewOwn|vmm.ViewWritable)
}

// Seal ends writing: from here on the unit runs and Write refuses. Without
// W^X it makes the pages read-execute (one mprotect); under W^X they
// already are, and Seal makes no system call.
func (u *Unit) Seal() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.freed {
		return fmt.Errorf("vmcode: sealing the unit at %#x: %w", u.Exec(), ErrClosed)
	}
	if u.sealed {
		return nil
	}
	if !u.wx {
		if err := u.slot.Protect(u.slot.Base(), u.slot.Size(), mem.ProtRX); err != nil {
			return err
		}
	}
	u.sealed = true
	return nil
}

// Free returns the unit's pages to vmcode. Without W^X the memory goes
// back to the kernel at once; under W^X up to 1 MiB of freed units stay in
// the shared object, inaccessible from both views, so that the next Alloc
// over them costs a memclr instead of two page faults (vmm.VMM.Trim gives
// them back). Freeing a unit twice, or after its Code or VMM closed,
// fails with an error wrapping ErrClosed.
func (u *Unit) Free() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.freed {
		return fmt.Errorf("vmcode: freeing the unit at %#x: %w", u.Exec(), ErrClosed)
	}
	err := u.slot.Release()
	if err != nil && !errors.Is(err, vmm.ErrClosed) {
		return err // still allocated: Free may be retried
	}
	// Released now, or with vmcode by the VMM's Close.
	u.freed = true
	u.code.mu.Lock()
	delete(u.code.units, u)
	u.code.mu.Unlock()
	return err
}
