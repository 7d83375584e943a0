package vmm

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/aspacem"
)

// ErrClosed is returned by operations on a closed VMM, and wrapped by the
// errors every object living in a VMM's memory returns once it, or its
// VMM, is closed: errors.Is(err, ErrClosed) holds for all of them.
var ErrClosed = errors.New("vmm: closed")

// Stage orders the dependents Close closes before vmcode: every dependent
// of a lower stage closes before any of a higher one, and within a stage
// the latest tracked closes first.
type Stage int

// Stages, in the order Close closes them.
const (
	// StageRun is for what runs code in vmcode: the jit's machines, with
	// the programs they loaded. They close first, so that nothing still
	// runs, or is translated from, code about to go.
	StageRun Stage = iota
	// StageLoad is for loaded libraries, whose finalisers run at close
	// and may call any code still mapped: code units (a redirected
	// import bound to an emitted routine) and each other.
	StageLoad
	// StageCode is for allocators of emitted code (vmcode.Code), which
	// free their units.
	StageCode
	// StageData is for everything else an embedder keeps in a VMM's
	// memory: its own slots and vmheap allocations. They close last,
	// before the slots nobody tracked, vmheap and vmcode themselves go.
	StageData
)

// Track registers close as a dependent of v, named name: v.Close calls it
// before it releases vmcode (see the package documentation for the
// order). The dependent calls untrack when it is closed by other means,
// once it no longer uses v's memory, and treats a second close as an
// error wrapping ErrClosed, which Close ignores; but a close that comes
// while another is in progress must wait for it to finish before it
// returns, or Close would release memory under it. Track fails with
// ErrClosed once Close has started.
//
// close is called with no lock of v held and may call any method of v
// and of its slots, but not v.Close.
func (v *VMM) Track(stage Stage, name string, close func() error) (untrack func(), err error) {
	if close == nil {
		return nil, fmt.Errorf("vmm: tracking %q: nil close function", name)
	}
	if stage < StageRun || stage > StageData {
		return nil, fmt.Errorf("vmm: tracking %q: unknown stage %d", name, stage)
	}
	untrack, ok := v.deps.Add(int(stage), name, close)
	if !ok {
		return nil, fmt.Errorf("vmm: tracking %q: %w", name, ErrClosed)
	}
	return untrack, nil
}

// Dependents returns the names of the dependents tracked now, in the order
// Close would close them.
func (v *VMM) Dependents() []string { return v.deps.Names() }

// acquire holds v open for an operation on memory v already handed out;
// release with v.life.RUnlock. It fails only once vmcode is released:
// while Close closes its dependents, they still release their slots.
func (v *VMM) acquire() error {
	v.life.RLock()
	if v.closed {
		v.life.RUnlock()
		return ErrClosed
	}
	return nil
}

// acquireNew is acquire for an operation that hands out memory (a slot,
// a vmheap allocation): it fails from the moment Close starts.
func (v *VMM) acquireNew() error {
	v.life.RLock()
	if v.closing || v.closed {
		v.life.RUnlock()
		return ErrClosed
	}
	return nil
}

// Close closes every tracked dependent, then releases the application
// memory left, vmcode with every slot still in it and vmheap with every
// allocation: afterwards the VMM
// owns nothing and the kernel shows none of its mappings, and every
// operation on the VMM, its slots and its dependents fails with an error
// wrapping ErrClosed.
//
// From the moment Close starts, new slots, vmheap allocations and Track
// are refused. It then takes the dependents in stage order (StageRun,
// StageLoad, StageCode, StageData; the latest tracked first within a
// stage) and calls each one's close with no lock of v held, waiting for
// it: a machine's close waits for a Run in progress, so Close does not
// return while code it is about to release runs. A dependent's error is
// reported, and Close goes on. Last, one release of each whole
// reservation (vmheap, then vmcode) takes every remaining slot's file
// views and committed pages with it; if the OS refuses, Close reports it
// and may be called again. A second Close after a successful one returns
// ErrClosed.
func (v *VMM) Close() error {
	v.closeMu.Lock()
	defer v.closeMu.Unlock()
	v.life.Lock()
	if v.closed {
		v.life.Unlock()
		return ErrClosed
	}
	v.closing = true
	v.life.Unlock()

	errs := v.deps.CloseAll("vmm", ErrClosed)
	if err := v.releaseAll(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// releaseAll releases the application memory left (appmem.go), vmheap
// and vmcode, and marks v closed. On an OS failure it changes nothing more
// and Close may retry.
func (v *VMM) releaseAll() error {
	v.life.Lock()
	defer v.life.Unlock()
	if err := v.closeApp(); err != nil {
		return err
	}
	if v.heap != nil {
		if err := v.heap.close(); err != nil {
			return err
		}
		v.heap = nil
	}
	if err := v.back.release(); err != nil {
		return fmt.Errorf("vmm: releasing vmcode: %w", err)
	}
	v.closed = true
	v.mu.Lock()
	v.slots = nil
	v.mu.Unlock()
	if err := v.space.Update(aspacem.Segment{Start: v.codeBase, End: v.codeBase + v.codeSize, Kind: aspacem.KindFree}); err != nil {
		return fmt.Errorf("vmm: recording vmcode's release: %w", err)
	}
	return nil
}
