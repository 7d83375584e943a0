package jit

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// The machines of one address space (docs/ARCHITECTURE.md, section 14).
//
// Every application thread of a program runs on a machine of its own
// (thread_linux_amd64.go): its own code cache, indirect-branch table,
// emitted routines and context, so that translated code and the
// dispatcher's hot path take no lock, and no thread ever runs a fragment
// another thread is unlinking or flushing. What the machines share is the
// address space, and with it the code they translate: a codeSpace.
//
//   - mm is the address space's lock, as the kernel's mmap_lock: held
//     for reading while a machine reads the application's code
//     (translating a block, analysing an inline-cache target), for
//     writing while a memory call changes the address space. No thread
//     decodes memory another thread is unmapping.
//   - A change to code is seen by one machine (a memory call, a write
//     fault on a write-protected page, a system call about to write
//     there). It drops its own translations at once and queues the range
//     for every other member that may hold some (its inbox, with a flag
//     the dispatcher tests), which drops them before it next translates
//     or enters the cache; a member running translated code is kicked
//     out of it (thread.kick). The window: a thread may finish the
//     fragment it is in, and the fragments linked to it, until the kick
//     arrives, as a processor may run instructions it fetched before
//     another one's store to them.
//   - Write protection belongs to the space, not to a machine: a page
//     reachvm write-protected (wpPage) keeps the application's own
//     protection and counts the members whose translations read it; the
//     last one to let it go gives the protection back. A write to it
//     faults in whichever thread writes, whose machine gives the page
//     its protection back for all of them.
type codeSpace struct {
	// v is the members' VMM. Immutable.
	v *vmm.VMM
	// mm is the address space's lock (see above). Lock order: a
	// machine's mu, then mm, then mu below, then the VMM's locks.
	mm sync.RWMutex

	// mu guards the fields below.
	mu sync.Mutex
	// machines are the members: the machines of the threads running in
	// the address space. A machine is a member from its creation (a
	// program's own) or its thread's start (a thread's) until it stops
	// running there.
	machines []*Machine
	// wp are the pages reachvm write-protected, by address. nwp is its
	// length, read without mu by the system-call paths' quick test.
	wp  map[uintptr]*wpPage
	nwp atomic.Int64
	// gen counts the pages reachvm gave their protection back (for a
	// write, or as their last user let them go), and givenBack is the
	// count at which each recent one was: a write fault on a page no
	// longer write-protected is reachvm's (the page was protected when
	// the thread wrote, and another thread gave it back since) if the
	// page was given back after the faulting thread last entered the
	// cache.
	gen       atomic.Uint64
	givenBack map[uintptr]uint64
	// owner is the machine that made the space (a program's first, or a
	// Machine of its own), which releases what the space holds when it
	// is freed, after the other members. Immutable.
	owner *Machine
	// cmods are the modules the client was told of.
	cmods clientModules
	// cells are the cells of the Shared counters the members' code
	// updates, nil until the first.
	cells *cellArena
}

// wpPage is a page reachvm write-protected.
type wpPage struct {
	// app is the application's own protection, which the page gets back
	// when users drops to 0.
	app mem.Prot
	// users counts the members whose code index holds the page (a
	// codePage whose wp is this).
	users int
	// gone is set once the page is no longer write-protected by reachvm
	// (its protection given back, or set by the application, or the page
	// unmapped) while members may still hold it: they let it go without
	// touching the page.
	gone bool
}

// maxGivenBack bounds codeSpace.givenBack: a fault is handled long
// before that many more pages are given back.
const maxGivenBack = 1024

// newCodeSpace returns the space of machine m alone.
func newCodeSpace(m *Machine) *codeSpace {
	return &codeSpace{v: m.v, owner: m, machines: []*Machine{m}, wp: make(map[uintptr]*wpPage), givenBack: make(map[uintptr]uint64)}
}

// sharedCells returns the space's arena of Shared counter cells.
func (cs *codeSpace) sharedCells() *cellArena {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.cells == nil {
		cs.cells = newCellArena(cs.v)
	}
	return cs.cells
}

// releaseCells releases the Shared counter cells.
//
// Preconditions: no member runs code (the owner is being freed, after
// the others).
func (cs *codeSpace) releaseCells() error {
	cs.mu.Lock()
	a := cs.cells
	cs.cells = nil
	cs.mu.Unlock()
	return a.release()
}

// join makes m a member, running thread t.
//
// Preconditions: m has no translations, or has been told every change
// since it last left.
func (cs *codeSpace) join(m *Machine, t *thread) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	m.th = t
	for _, o := range cs.machines {
		if o == m {
			return
		}
	}
	cs.machines = append(cs.machines, m)
}

// leave ends m's membership: it is told of no change any more, and no
// longer kicked.
func (cs *codeSpace) leave(m *Machine) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	m.th = nil
	for i, o := range cs.machines {
		if o == m {
			cs.machines = append(cs.machines[:i], cs.machines[i+1:]...)
			return
		}
	}
}

// invalidation is a change to code queued for a member.
type invalidation struct {
	// r is the range whose translations go.
	r mem.Range
	// protSet says the pages in r have the protection the application
	// asked for, or are gone (dropRange's protSet).
	protSet bool
}

// inbox holds the changes a member was told of and has not acted on.
type inbox struct {
	mu sync.Mutex
	// items are the changes, in the order they came; flush replaces
	// them all once there are more than maxInbox.
	items []invalidation
	flush bool
}

// maxInbox bounds a member's inbox: a thread that stays long in a system
// call while others keep changing code then flushes its whole cache when
// it comes back.
const maxInbox = 64

// Bits of Machine.work.
const (
	// workInval: the inbox has changes to act on.
	workInval = 1 << iota
	// workExit: the program is ending (exit_group, a fatal signal):
	// the thread ends at its next safe point.
	workExit
)

// tell queues inv for the members other than from that may hold
// translations of inv.r (every one with all set: a write to code, which
// a member may be translating from right now), and kicks those running
// translated code out of it.
//
// Preconditions: for a change of the address space (not all), mm is held
// for writing, so that no member adds code pages meanwhile.
func (cs *codeSpace) tell(from *Machine, inv invalidation, all bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, o := range cs.machines {
		if o == from || (!all && !o.pages.mayHold(inv.r)) {
			continue
		}
		o.inbox.mu.Lock()
		if len(o.inbox.items) >= maxInbox {
			o.inbox.items, o.inbox.flush = o.inbox.items[:0], true
		} else if !o.inbox.flush {
			o.inbox.items = append(o.inbox.items, inv)
		}
		o.inbox.mu.Unlock()
		o.work.Or(workInval)
		if o.entered.Load() && o.th != nil {
			o.th.kick()
		}
	}
}

// drainInbox acts on the changes m was told of.
//
// Preconditions: m.mu is held.
func (m *Machine) drainInbox() {
	m.work.And(^uint32(workInval))
	m.inbox.mu.Lock()
	items, flush := m.inbox.items, m.inbox.flush
	m.inbox.items, m.inbox.flush = nil, false
	m.inbox.mu.Unlock()
	if flush {
		m.flush()
		return
	}
	for _, inv := range items {
		m.dropLocal(inv.r, inv.protSet)
	}
}

// lockCode takes the address space's lock for reading the application's
// code, having first acted on the changes m was told of (so its code map
// names no memory unmapped since).
//
// Preconditions: m.mu is held.
func (m *Machine) lockCode() {
	m.cs.mm.RLock()
	if m.work.Load()&workInval != 0 {
		m.drainInbox()
	}
}

func (m *Machine) unlockCode() { m.cs.mm.RUnlock() }

// protect makes e, a page new to m's index, write-protected if it is
// application memory the application has writable, or counts m as a user
// of it if another member protected it already. fresh reports that the
// page was writable until this call: what was read from it before may
// have changed since.
//
// Preconditions: m.mu is held, mm for reading.
func (cs *codeSpace) protect(m *Machine, e *codePage) (fresh bool, err error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if w := cs.wp[e.page]; w != nil {
		w.users++
		e.wp = w
		m.wpPages++
		return false, nil
	}
	prot, ok := m.appProt(e.page)
	if !ok || prot&mem.ProtWrite == 0 {
		return false, nil
	}
	// In the set before the page is protected: a thread whose write
	// faults on it finds it there (nwp is not 0), or given back.
	w := &wpPage{app: prot, users: 1}
	cs.wp[e.page] = w
	cs.nwp.Add(1)
	if err := m.v.ProtectApp(mem.Range{Start: e.page, End: e.page + mem.PageSize}, prot&^mem.ProtWrite|mem.ProtRead); err != nil {
		delete(cs.wp, e.page)
		cs.nwp.Add(-1)
		return false, fmt.Errorf("jit: write-protecting the code page %#x: %w", e.page, err)
	}
	e.wp = w
	m.wpPages++
	m.stats.WriteProtects++
	return true, nil
}

// release drops a user of w, page's entry: the last one gives the page
// the application's protection back.
func (cs *codeSpace) release(w *wpPage, page uintptr) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if w.gone {
		return nil
	}
	if w.users--; w.users > 0 {
		return nil
	}
	if err := cs.giveBackLocked(w, page); err != nil {
		w.users++
		return err
	}
	return nil
}

// giveBackLocked gives page, write-protected as w says, the
// application's protection back, and records it in givenBack.
//
// Preconditions: cs.mu is held.
func (cs *codeSpace) giveBackLocked(w *wpPage, page uintptr) error {
	err := cs.v.ProtectApp(mem.Range{Start: page, End: page + mem.PageSize}, w.app)
	if err != nil && !errors.Is(err, vmm.ErrNotApp) && !errors.Is(err, mem.ErrNotMapped) && !errors.Is(err, vmm.ErrClosed) {
		return fmt.Errorf("jit: giving the code page %#x its protection %v back: %w", page, w.app, err)
	}
	// Otherwise the page is gone (unmapped behind a failed call, or with
	// its VMM): nothing to give back.
	cs.forgetLocked(w, page)
	g := cs.gen.Add(1)
	if len(cs.givenBack) >= maxGivenBack {
		for p, pg := range cs.givenBack {
			if pg+maxGivenBack/2 < g {
				delete(cs.givenBack, p)
			}
		}
	}
	cs.givenBack[page] = g
	return nil
}

// forgetLocked takes w, page's entry, out of the set: the page is no
// longer write-protected by reachvm.
//
// Preconditions: cs.mu is held.
func (cs *codeSpace) forgetLocked(w *wpPage, page uintptr) {
	w.gone = true
	if cs.wp[page] == w {
		delete(cs.wp, page)
		cs.nwp.Add(-1)
	}
}

// forget takes the pages in r out of the set without touching them: the
// application set their protection, or unmapped them.
func (cs *codeSpace) forget(r mem.Range) {
	if cs.nwp.Load() == 0 {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.eachLocked(r, func(p uintptr, w *wpPage) { cs.forgetLocked(w, p) })
}

// unprotect gives every write-protected page in r the application's
// protection back, for a write about to be made there, and returns the
// ranges of those it did.
func (cs *codeSpace) unprotect(r mem.Range) []mem.Range {
	if cs.nwp.Load() == 0 {
		return nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []mem.Range
	cs.eachLocked(r, func(p uintptr, w *wpPage) {
		if cs.giveBackLocked(w, p) != nil {
			return
		}
		if n := len(out); n > 0 && out[n-1].End == p {
			out[n-1].End += mem.PageSize
		} else {
			out = append(out, mem.Range{Start: p, End: p + mem.PageSize})
		}
	})
	return out
}

// eachLocked calls f for every write-protected page in r, in address
// order when r is smaller than the set.
//
// Preconditions: cs.mu is held; f may delete the page's entry.
func (cs *codeSpace) eachLocked(r mem.Range, f func(uintptr, *wpPage)) {
	if r.Empty() || len(cs.wp) == 0 {
		return
	}
	if (r.End-pageOf(r.Start))/mem.PageSize <= uintptr(len(cs.wp)) {
		for p := pageOf(r.Start); p < r.End && p >= pageOf(r.Start); p += mem.PageSize {
			if w := cs.wp[p]; w != nil {
				f(p, w)
			}
		}
		return
	}
	var in []uintptr
	for p := range cs.wp {
		if p+mem.PageSize > r.Start && p < r.End {
			in = append(in, p)
		}
	}
	for _, p := range in {
		f(p, cs.wp[p])
	}
}

// wasGivenBack reports whether page was given its protection back for a
// write after enter (the space's gen when the faulting thread entered
// the cache).
func (cs *codeSpace) wasGivenBack(page uintptr, enter uint64) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	g, ok := cs.givenBack[page]
	return ok && g > enter
}
