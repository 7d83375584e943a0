package jit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
)

// Code that changes.
//
// A translation is a copy: once the application changes the code it was
// read from, the copy must go. Two kinds of change reach translated code.
//
// Memory calls (munmap, mprotect, pkey_mprotect, mremap, mmap MAP_FIXED
// over code, madvise MADV_DONTNEED and its kin, brk shrinking) delete the
// fragments read from the pages they touch; an mprotect that leaves a page
// executable and not writable keeps them. The machine keeps an index of
// the application pages its live fragments were read from (Machine.pages,
// ordered and bounded), so that a call on memory that holds no
// translation costs a bounds check, or a lookup in the ordered index when
// the range lies between code pages: 8 to 57 ns (BenchmarkCodeIndex),
// against 46 µs for a program's mmap and munmap of 64 KiB, which
// flushing the whole cache at every munmap would make 88 µs
// (BenchmarkProgramMmap/program).
//
// Writes: when a fragment is read from a page of application memory
// (vmm's, where the program's memory is) that the application has
// writable, the page loses PROT_WRITE (through vmm.VMM.ProtectApp, so
// that aspacem keeps matching the kernel) and the application's own
// protection is remembered in the index. A write to the page then faults;
// the signal layer calls codeWritten, which gives the page its protection
// back, deletes its fragments and has the faulting instruction run again,
// from a transient fragment of its own that protects nothing (so that
// code writing its own page, even its next instruction, goes on). System
// calls that would write into such a page get EFAULT from the kernel, or
// stop short, instead of faulting: the known writers (read, pread64,
// readv, preadv, preadv2, recvfrom, recvmsg, accept, accept4, wait4,
// waitid, getrandom) have their buffers' pages unprotected before the
// call, and any other call that fails with EFAULT with a pointer argument
// in a protected page, or in the page before one, has those pages
// unprotected and is made again (smc_syscall_linux_amd64.go). This is DynamoRIO's scheme.
// Valgrind's, a check of the source bytes at every entry of a block read
// from writable memory, costs on every execution of such code (its
// --smc-check=all-non-file adds a quarter to its own time on smc_jit's
// hot loop); write protection adds nothing to the translated code
// (BenchmarkCodeWrites/hot: the same time protected and unprotected), and
// costs about 65 µs a write to code that ran (BenchmarkCodeWrites/one),
// of which the two mprotects are most (30 to 45 µs a pair on the machine
// measured), plus translating again what the page held. A JIT that writes
// a batch of code, then runs it, pays that once per page per batch; code
// that writes the page it keeps running from pays it at every write
// (DynamoRIO then switches the page to sandboxing, checking the code at
// each entry: not done here).
//
// Deleting a fragment, rather than flushing the whole cache, unlinks what
// enters it: the exits patched to jump to it go back to their stubs, its
// entry in the indirect-branch table is emptied, and each inline-cache
// slot that jumps to it becomes a direct exit to the same target (its
// register and flag restores put back, since they were left out for the
// old code), which the dispatcher links to the fragment translated next
// for that target. The fragment's code and exit numbers stay, unused,
// until a flush reuses them, which comes when they outnumber the live
// ones (minGarbage). On BenchmarkCodeWrites, rewriting 8 of 1,000
// generated functions (one page) costs 1.0 to 1.3 ms an op this way, 3.3
// to 4.4 ms flushing everything (Machine.wholeFlush); rewriting every
// other one (every page) costs about the same both ways (3.1 to 4.5 ms,
// 3.0 to 3.4 ms): once most of the code changes, a flush does as well.
//
// Not covered: writes by another mapping of the same memory (a shared
// memfd mapped twice, which programs cannot make: their MAP_SHARED is
// refused), writes through /proc/self/mem or process_vm_writev (which
// ignore protection), and code outside application memory (library mode,
// code in memory the embedder mapped itself, or changed through vmm
// directly): its writes go unseen, and the embedder calls Flush after
// changing it. The kernel's view of a write-protected page
// (/proc/self/maps) shows it without PROT_WRITE.

// codePage is what the machine knows of one application page its
// translations were read from.
type codePage struct {
	// page is the page's address.
	page uintptr
	// frags are the fragments read from the page; dead ones may linger
	// until the page goes. live counts the others.
	frags []*fragment
	live  int
	// wp is the address space's entry for the page while the machine is
	// one of its users: reachvm removed PROT_WRITE from the page, which
	// gets the application's own protection back when its last user's
	// last translation goes (codeSpace). nil otherwise.
	wp *wpPage
	// held is set while the page, write-protected for a translation that
	// is being made again (protectPages reported it fresh), has no
	// fragment yet: protectPages takes it as ready, index clears it, and
	// fragmentFor releases it if the translation does not keep it.
	held bool
}

// codeIndex is the machine's index of code pages (Machine.pages), in
// address order, so that a range finds its pages in O(log n) whatever its
// size, and bounded, so that a range outside every page costs two
// compares.
type codeIndex struct {
	// tree holds the pages by address; nil until the first.
	tree *btree.BTreeG[*codePage]
	// lo and hi bound the pages in tree (hi the end of the highest), or
	// are both 0 when it is empty. They grow with tree and are reset
	// only when it empties. shared are the same, for other members of
	// the address space (mayHold), which read them holding its lock
	// for writing, while the machine cannot add a page.
	lo, hi uintptr
	shared [2]atomic.Uintptr
	// key is the search key of get and in, kept here so that a search
	// allocates nothing.
	key [2]codePage
}

func codePageLess(a, b *codePage) bool { return a.page < b.page }

func (x *codeIndex) len() int {
	if x.tree == nil {
		return 0
	}
	return x.tree.Len()
}

// get returns page p's entry, or nil.
func (x *codeIndex) get(p uintptr) *codePage {
	if x.tree == nil || p < x.lo || p >= x.hi {
		return nil
	}
	x.key[0].page = p
	e, _ := x.tree.Get(&x.key[0])
	return e
}

func (x *codeIndex) add(e *codePage) {
	if x.tree == nil {
		x.tree = btree.NewG(16, codePageLess)
	}
	if x.tree.Len() == 0 {
		x.lo, x.hi = e.page, e.page+mem.PageSize
	}
	x.lo, x.hi = min(x.lo, e.page), max(x.hi, e.page+mem.PageSize)
	x.shared[0].Store(x.lo)
	x.shared[1].Store(x.hi)
	x.tree.ReplaceOrInsert(e)
}

func (x *codeIndex) remove(e *codePage) {
	x.tree.Delete(e)
	if x.tree.Len() == 0 {
		x.lo, x.hi = 0, 0
		x.shared[1].Store(0)
		x.shared[0].Store(0)
	}
}

// mayHold reports whether r overlaps the index's bounds, from another
// goroutine.
func (x *codeIndex) mayHold(r mem.Range) bool {
	return r.End > x.shared[0].Load() && r.Start < x.shared[1].Load()
}

// in returns the entries of the pages in r, in address order.
func (x *codeIndex) in(r mem.Range) []*codePage {
	if r.End <= x.lo || r.Start >= x.hi || r.Empty() {
		return nil
	}
	var out []*codePage
	x.key[0].page, x.key[1].page = pageOf(r.Start), r.End
	x.tree.AscendRange(&x.key[0], &x.key[1], func(e *codePage) bool {
		out = append(out, e)
		return true
	})
	return out
}

// slotRef names slot k of an inline-cache site.
type slotRef struct {
	ic *icSite
	k  int
}

// pageOf returns the page holding a.
func pageOf(a uintptr) uintptr { return a &^ (mem.PageSize - 1) }

// note records that the translation being built read [lo, hi).
func (t *translator) note(lo, hi uintptr) {
	if hi <= lo {
		hi = lo + 1
	}
	for p := pageOf(lo); p < hi; p += mem.PageSize {
		t.addPage(p)
	}
}

func (t *translator) addPage(p uintptr) {
	for _, q := range t.pages {
		if q == p {
			return
		}
	}
	t.pages = append(t.pages, p)
}

// appProt returns the protection of page p if it is committed or mapped
// application memory (the only memory reachvm may reprotect).
func (m *Machine) appProt(p uintptr) (mem.Prot, bool) {
	if !m.v.IsApp(p, mem.PageSize) {
		return 0, false
	}
	s, ok := m.v.Space().Lookup(p)
	if !ok || s.Kind != aspacem.KindAnon && s.Kind != aspacem.KindFile {
		return 0, false
	}
	return s.Prot, true
}

// protectPages makes ready the pages a fragment about to be installed was
// read from: a page new to the index that is application memory the
// application has writable loses PROT_WRITE, or is counted as the
// machine's too if another member of the address space protected it
// (codeSpace.protect). fresh reports that some page was writable until
// now: another thread may have written it between the translation's
// reading and the protection, a write no fault reports, so the caller
// translates again, from pages any write to which now faults. On error
// nothing new is left in the index.
//
// Preconditions: m.mu is held, m.cs.mm for reading.
func (m *Machine) protectPages(pages []uintptr) (fresh bool, err error) {
	for i, p := range pages {
		e := m.pages.get(p)
		if e != nil && (e.live > 0 || e.held) {
			continue
		}
		if e != nil {
			// A page whose protection could not be given back: try
			// again before deciding afresh.
			if err := m.restore(e); err != nil {
				m.unindexNew(pages[:i])
				return false, err
			}
		}
		if e == nil {
			e = &codePage{page: p}
			m.pages.add(e)
		}
		if !m.protectWrites {
			continue
		}
		f, err := m.cs.protect(m, e)
		if err != nil {
			m.unindexNew(pages[:i])
			return false, err
		}
		fresh = fresh || f
	}
	return fresh, nil
}

// hold marks pages, just made ready by protectPages for a translation that
// is to be made again, as held until it is installed.
func (m *Machine) hold(pages []uintptr) {
	for _, p := range pages {
		if e := m.pages.get(p); e != nil && e.live == 0 {
			e.held = true
		}
	}
}

// unhold releases the pages among pages still held: those the last
// translation did not read after all, or all of them when it failed.
func (m *Machine) unhold(pages []uintptr) {
	for _, p := range pages {
		if e := m.pages.get(p); e != nil && e.held {
			e.held = false
			if e.live == 0 {
				m.release(e)
			}
		}
	}
}

// unindexNew undoes protectPages for pages that no live fragment holds.
func (m *Machine) unindexNew(pages []uintptr) {
	for _, p := range pages {
		if e := m.pages.get(p); e != nil && e.live == 0 {
			m.release(e)
		}
	}
}

// index records f in the index of every page it was read from.
//
// Preconditions: protectPages(f.pages) succeeded.
func (m *Machine) index(f *fragment) {
	for _, p := range f.pages {
		e := m.pages.get(p)
		e.frags = append(e.frags, f)
		e.live++
		e.held = false
	}
}

// restore ends the machine's use of page e's write protection: the last
// user of the page gives it the application's protection back, unless
// the page stopped being write-protected meanwhile (a write, the
// application's own mprotect, an unmap).
func (m *Machine) restore(e *codePage) error {
	if e.wp == nil {
		return nil
	}
	if err := m.cs.release(e.wp, e.page); err != nil {
		return err
	}
	e.wp = nil
	m.wpPages--
	return nil
}

// unprotectAll gives every page reachvm write-protected its protection
// back, for Close: the application memory may outlive the machine.
func (m *Machine) unprotectAll() error {
	var errs []error
	for _, e := range m.pages.in(mem.Range{Start: m.pages.lo, End: m.pages.hi}) {
		errs = append(errs, m.restore(e))
	}
	return errors.Join(errs...)
}

// release drops page e, whose last translation went, from the index,
// giving it back the application's protection. A page whose protection
// cannot be given back stays in the index, with no fragment, to be tried
// again.
func (m *Machine) release(e *codePage) {
	if m.restore(e) != nil {
		e.frags = e.frags[:0]
		return
	}
	m.pages.remove(e)
}

// dropRange deletes the fragments read from pages in r, whose memory the
// application unmapped, replaced or changed, in every machine of the
// address space: this one at once, the others when they next come to
// their dispatcher (codeSpace.tell). protSet says the pages in r have the
// protection the application asked for, or are gone: they are not given
// back the one remembered. Pages outside r that lose their last fragment
// get theirs back.
//
// Preconditions: m.mu is held, m.cs.mm for writing when the address
// space has other members.
func (m *Machine) dropRange(r mem.Range, protSet bool) {
	if protSet {
		m.cs.forget(r)
		m.clientUnmapped(r.Start, r.End)
	}
	m.codes.forget(r.Start, r.End)
	m.cs.tell(m, invalidation{r: r, protSet: protSet}, false)
	m.dropLocal(r, protSet)
}

// dropLocal is dropRange's part in this machine.
//
// Preconditions: m.mu is held.
func (m *Machine) dropLocal(r mem.Range, protSet bool) {
	var doomed []*fragment
	pages := m.pages.in(r)
	for _, e := range pages {
		if protSet {
			// The space forgot the page (dropRange): this lets it
			// go without touching it.
			_ = m.restore(e)
		}
		for _, f := range e.frags {
			if !f.dead {
				doomed = append(doomed, f)
			}
		}
	}
	m.drop(doomed)
	// Pages left with no fragment (those whose protection could not be
	// given back before) are released too.
	for _, e := range pages {
		if e.live == 0 && m.pages.get(e.page) == e {
			m.release(e)
		}
	}
}

// drop deletes the fragments in doomed, or flushes the whole cache under
// wholeFlush, or when the exit stubs of the inline-cache slots to
// redirect do not fit in the cache's current unit.
func (m *Machine) drop(doomed []*fragment) {
	if len(doomed) == 0 {
		return
	}
	need := uintptr(0)
	for _, f := range doomed {
		need += uintptr(len(f.slots)) * stubLen
	}
	if m.wholeFlush || !m.stubRoom(need) {
		m.flush()
		return
	}
	for _, f := range doomed {
		m.deleteFragment(f)
	}
	// A link or a slot the dispatcher decided before the deletion is
	// dropped, as after a flush.
	m.epoch++
	// Deleted fragments keep their cache space and exit numbers until a
	// flush: once they outnumber the live ones, flush, as a copying
	// collector would, which at most doubles the translation work of
	// code that keeps changing.
	if m.deadExits > minGarbage && 2*m.deadExits > m.exits.len() {
		m.flush()
	}
}

// minGarbage is how many exits of deleted fragments are kept before a
// flush reclaims them, whatever the live ones.
const minGarbage = 1 << 14

// stubRoom reports whether n bytes of exit stubs fit in the current unit.
func (m *Machine) stubRoom(n uintptr) bool {
	if n == 0 {
		return true
	}
	if len(m.units) == 0 {
		return false
	}
	u := m.units[m.cur]
	return u.size-u.used >= n
}

// deleteFragment unlinks f from everything that enters it and takes it
// out of the index (see the comment at the top of the file). Its pages
// that lose their last fragment are released.
//
// Preconditions: m.mu is held; the current unit has room for an exit
// stub per slot in f.slots.
func (m *Machine) deleteFragment(f *fragment) {
	if f.dead {
		return
	}
	f.dead = true
	if m.frags[f.tag] == f {
		delete(m.frags, f.tag)
	}
	for _, id := range f.incoming {
		e := m.exits.at(id)
		if e.linked == f && !e.owner.dead {
			e.owner.unit.patchRel32(e.branch, e.stub)
			e.linked = nil
		}
	}
	for _, s := range f.slots {
		if !s.ic.owner.dead && s.ic.slots[s.k].pred == f.tag {
			m.slotToExit(s.ic, s.k)
		}
	}
	f.incoming, f.slots = nil, nil
	m.unlinkTables(f)
	m.clearIBLEntry(f.tag, f.entry)
	m.deadExits += int(f.nexits)
	for _, p := range f.pages {
		e := m.pages.get(p)
		if e == nil {
			continue
		}
		if e.live--; e.live == 0 {
			m.release(e)
		}
	}
	m.stats.Invalidated++
}

// clearIBLEntry empties the indirect-branch table's entry for tag if it
// leads to entry.
func (m *Machine) clearIBLEntry(tag, entry uintptr) {
	k := uintptr(tag & (iblEntries - 1))
	at := m.lay.ibl + 16*k
	tab := m.mem[at : at+16]
	if binary.LittleEndian.Uint64(tab) == uint64(-int64(tag)) && binary.LittleEndian.Uint64(tab[8:]) == uint64(entry) {
		m.emptyIBL(k)
	}
}

// slotToExit turns slot k of ic, whose fragment is being deleted, into a
// direct exit to the same target: its restores go back to their full form
// (the slot may have left out a register or the flags the old code did
// not read), and its hit jump goes to a new exit stub, which the
// dispatcher links to the target's next fragment like any direct exit.
//
// Preconditions: the current unit has room for an exit stub.
func (m *Machine) slotToExit(ic *icSite, k int) {
	switch {
	case ic.form == formCmp && ic.keep:
		// lea rsp, [rsp+d]; nop becomes popfq; lea rsp, [rsp+d-8].
		at := ic.base + uintptr(ic.slots[k].restoreOff)
		old := ic.unit.bytes(at, 9)
		if old[0] != 0x9d {
			d := int32(uint32(old[4]) | uint32(old[5])<<8 | uint32(old[6])<<16 | uint32(old[7])<<24)
			a := amd64.NewAssembler(at)
			a.Popfq()
			a.LeaRSP32(d - 8)
			ic.unit.write(at, a.Bytes())
		}
	case ic.form != formCmp:
		at := ic.base + uintptr(ic.slots[k].restoreOff)
		a := amd64.NewAssembler(at)
		_ = a.MovLoad(amd64.RCX, amd64.RIPRel(m.ctx+gpr(amd64.RCX)))
		if ic.rdx {
			_ = a.MovLoad(amd64.RDX, amd64.RIPRel(m.ctx+gpr(amd64.RDX)))
		}
		ic.unit.write(at, a.Bytes())
	}
	u := m.units[m.cur]
	stub := u.exec + u.used
	id := m.exits.len()
	a := amd64.NewAssembler(stub)
	_ = a.MovStore(amd64.RIPRel(m.ctx+gpr(amd64.RAX)), amd64.RAX)
	a.MovImm32(amd64.RAX, uint32(id))
	if err := a.JmpRel32(m.gen.fret); err != nil {
		panic(fmt.Sprintf("jit: an exit stub at %#x cannot reach the dispatcher: %v", stub, err))
	}
	u.write(stub, a.Bytes())
	u.used += uintptr(a.Len())
	branch := ic.base + uintptr(ic.slots[k].hitEnd)
	ic.unit.patchRel32(branch, stub)
	m.exits.add(exit{kind: exitDirect, target: ic.slots[k].pred, branch: branch, stub: stub, owner: ic.owner})
}

// willWrite makes the write-protected code pages in r writable again, as
// the application has them, deleting their fragments in every machine
// of the address space: for a write the application is about to make
// there without faulting (a system call's, or reachvm's own on its
// behalf, such as a signal frame). It reports whether there were any.
//
// Preconditions: m.mu is held.
func (m *Machine) willWrite(r mem.Range) bool {
	given := m.cs.unprotect(r)
	if len(given) == 0 {
		return false
	}
	m.stats.CodeWrites++
	for _, g := range given {
		// Every member: one may be translating from the page right
		// now, and would install code read before the write.
		m.cs.tell(m, invalidation{r: g, protSet: true}, true)
		m.dropLocal(g, true)
	}
	return true
}

// unprotectRange gives every page in r that reachvm write-protected (for
// any machine of the address space) the application's protection back,
// and deletes their fragments everywhere: before a memory call that
// needs the application's own protection on them.
//
// Preconditions: m.mu is held, m.cs.mm for writing.
func (m *Machine) unprotectRange(r mem.Range) {
	for _, g := range m.cs.unprotect(r) {
		m.cs.tell(m, invalidation{r: g, protSet: true}, false)
		m.dropLocal(g, true)
	}
}

// codeWritten is called by the signal layer on a write fault
// (SIGSEGV, SEGV_ACCERR) at addr in application memory. It returns
// true if addr is in a page reachvm write-protected: the page then has
// the application's protection back, the fragments read from it are
// deleted (in every machine of the address space), and the next fragment
// the dispatcher asks for (the faulting instruction's, where the caller
// resumes) is a transient one of that one instruction, so that code
// writing the page it runs from gets past the write. It also returns
// true, the page being writable, when another thread's write gave it its
// protection back after this thread entered the cache: the write was
// made under reachvm's protection. It returns false for a fault of the
// application's own.
//
// The caller recovers the application's state from the faulting fragment
// first: the fragment may be deleted here (its code stays in place).
//
// Preconditions: m.mu is held (the dispatcher is running the
// application).
func (m *Machine) codeWritten(addr uintptr) bool {
	p := pageOf(addr)
	if !m.willWrite(mem.Range{Start: p, End: p + mem.PageSize}) && !m.cs.wasGivenBack(p, m.enterGen) {
		return false
	}
	m.oneShot = true
	return true
}

// protChanged updates the index after the application set the protection
// of r to prot (the kernel's is now prot): fragments of pages no longer
// executable, or made writable (the application is about to write code
// there), are deleted, in every machine; the others stay, and their
// page's protection is the application's own from now on (not
// write-protected: prot has no write), for every machine of the address
// space (the others let go of the page when they next look at it).
//
// Preconditions: m.mu is held, m.cs.mm as for dropRange.
func (m *Machine) protChanged(r mem.Range, prot mem.Prot) {
	if prot&mem.ProtExec == 0 || prot&mem.ProtWrite != 0 {
		m.dropRange(r, true)
		return
	}
	m.cs.forget(r)
	m.codes.forget(r.Start, r.End)
	for _, e := range m.pages.in(r) {
		_ = m.restore(e)
		if e.live == 0 {
			m.pages.remove(e)
		}
	}
}
