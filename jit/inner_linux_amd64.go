package jit

// Inner entries: a direct branch to code that a fragment already holds
// past its start is linked into that fragment instead of starting a new
// one.
//
// A superblock follows jumps, calls and the fall-through of conditional
// branches, so the blocks it holds past its first are often reached from
// elsewhere too: the taken side of another branch, a second call of the
// same function. Translated again as fragments of their own, they were
// 2,277 of the 16,750 fragments of python3's start. Where a block of a
// fragment starts at an exact mark (the application's state is all in
// its registers and flags, nothing of the translation's pending), the
// code from there on is what a fragment started at that address would
// run, so the direct exit that asks for the address is linked to that
// point, as to a fragment's body.
//
// Not every block start qualifies. The translated jump tables trust
// facts the path established before them (an index's bound, an index
// saved in the context), which a branch from elsewhere did not: a
// fragment with a table offers no inner entries. Nor does one with an
// indirect jump translated as a site: it may be a table whose first
// translation could not take it (a base register that held something
// else then), which a fragment started later takes; entering the old
// translation instead kept k_interp's switch on a site (1.14x native
// became 1.37x). With a client, the
// code inserted for a block may rely on what was inserted before it (a
// reserved register), so a client's machine offers none either. A
// transient fragment runs once and is in no table. Only direct exits use
// inner entries: the indirect-branch lookup borrows registers that a
// fragment's prefix gives back, which an inner point has no prefix for.

// innerEntry is a block start inside a fragment that a direct exit may
// be linked to.
type innerEntry struct {
	// f is the fragment, off the block's offset from f.entry.
	f   *fragment
	off uint32
}

// at returns the executable address of the entry.
func (ie innerEntry) at() uintptr { return ie.f.entry + uintptr(ie.off) }

// innerHead is a block start past a fragment's first whose translation
// began at offset off: an instruction boundary of the main path, where
// the application's state is all its own.
type innerHead struct {
	pc  uintptr
	off uint32
}

// noteInner records the block starts of f, just installed, as inner
// entries (see the top of the file), unless f offers none.
//
// Preconditions: f was installed from m.t's state.
func (m *Machine) noteInner(f *fragment) {
	t := &m.t
	if m.noInner || f.dead || t.transient || len(t.tables) > 0 || t.jmpSite || m.opts.Client != nil || len(t.inner) == 0 {
		return
	}
	if m.inner == nil {
		m.inner = make(map[uintptr]innerEntry)
	}
	for _, h := range t.inner {
		if h.pc == f.tag {
			continue
		}
		if _, ok := m.frags[h.pc]; ok {
			continue
		}
		if ie, ok := m.inner[h.pc]; !ok || ie.f.dead {
			m.inner[h.pc] = innerEntry{f: f, off: h.off}
		}
	}
}

// innerFor returns the live inner entry for tag, if tag has no fragment
// of its own.
func (m *Machine) innerFor(tag uintptr) (innerEntry, bool) {
	ie, ok := m.inner[tag]
	if !ok {
		return innerEntry{}, false
	}
	if ie.f.dead {
		delete(m.inner, tag)
		return innerEntry{}, false
	}
	if _, own := m.frags[tag]; own {
		return innerEntry{}, false
	}
	return ie, true
}
