package jit

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// codeUnit is one piece of the code cache: [exec, exec+size) runs, and its
// bytes are written at rw. Under W^X (vmcode units with a writable view)
// the two differ and no page is ever writable and executable at once;
// otherwise the unit is one read-write-execute mapping, as DynamoRIO's
// cache is by default.
type codeUnit struct {
	exec, rw, size uintptr
	// used is how many bytes from exec hold fragments.
	used uintptr
	// populated is how many bytes from exec are populated (prefaulted in
	// both views, populateChunk at a time as writes get there): a page
	// fault costs more than the call that spares a chunk's worth.
	populated uintptr
	// unit is the vmcode unit under W^X; slot the read-write-execute
	// slot otherwise.
	unit *vmcode.Unit
	slot *vmm.Slot
	// frags are the fragments in the unit, in address order (install
	// appends; a flush empties it), for finding the fragment of a cache
	// address the signal layer stopped at.
	frags []*fragment
	// sigRegion is the unit's entry in the signal layer's table, -1
	// before it is registered.
	sigRegion int
}

// wxCode and writableUnit are vmcode's W^X API, asserted rather than called
// directly so that the cache builds with and without it.
type (
	wxCode       interface{ WX() bool }
	writableUnit interface{ Writable() uintptr }
)

// allocUnit returns a code unit of at least size bytes.
func allocUnit(code *vmcode.Code, size uintptr) (*codeUnit, error) {
	if wc, ok := any(code).(wxCode); ok && wc.WX() {
		u, err := code.Alloc(size)
		if err != nil {
			return nil, err
		}
		wu, ok := any(u).(writableUnit)
		if !ok {
			_ = u.Free()
			return nil, errors.New("jit: W^X vmcode units have no writable view")
		}
		return &codeUnit{exec: u.Exec(), rw: wu.Writable(), size: u.Size(), unit: u, sigRegion: -1}, nil
	}
	v := code.VMM()
	s, err := v.ReserveSlot(size, vmcode.OwnerFcache)
	if err != nil {
		return nil, err
	}
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRWX); err != nil {
		_ = s.Release()
		return nil, err
	}
	return &codeUnit{exec: s.Base(), rw: s.Base(), size: s.Size(), slot: s, sigRegion: -1}, nil
}

// write copies b to the unit at executable address at.
func (u *codeUnit) write(at uintptr, b []byte) {
	off := at - u.exec
	if off > u.size || uintptr(len(b)) > u.size-off {
		panic(fmt.Sprintf("jit: write of %d bytes at %#x outside unit [%#x, +%#x)", len(b), at, u.exec, u.size))
	}
	if end := off + uintptr(len(b)); end > u.populated {
		u.populate(end)
	}
	if u.unit != nil {
		if err := u.unit.Write(off, b); err != nil {
			panic(fmt.Sprintf("jit: writing the code cache: %v", err))
		}
		return
	}
	copy(rawmem.Bytes(u.rw+off, uintptr(len(b))), b)
}

// populateChunk is how much of a unit is populated at a time: 16 pages,
// about what a small program's start-up translates between two calls
// (/bin/true fills 287 KB), so that the last chunk leaves little
// populated and unused.
const populateChunk = 64 << 10

// populate populates the unit from u.populated to past end, a whole
// number of chunks. Populating is advice: if it fails, the writes and
// runs fault the pages in as they would have.
func (u *codeUnit) populate(end uintptr) {
	to, ok := mem.AlignUp(end, populateChunk)
	if !ok || to > u.size {
		to = u.size
	}
	from := u.populated
	u.populated = to
	if u.unit != nil {
		_ = u.unit.Populate(from, to-from)
		return
	}
	_ = u.slot.Populate(u.exec+from, to-from, vmm.ViewOwn)
}

// bytes returns the unit's bytes [at, at+n) as the code runs them (read
// through the writable view, which has the same contents).
func (u *codeUnit) bytes(at, n uintptr) []byte {
	return rawmem.Bytes(u.rw+(at-u.exec), n)
}

func (u *codeUnit) contains(a uintptr) bool { return a >= u.exec && a-u.exec < u.size }

func (u *codeUnit) free() error {
	if u.sigRegion >= 0 {
		sigtramp.Unregister(u.sigRegion)
		u.sigRegion = -1
	}
	if u.unit != nil {
		return u.unit.Free()
	}
	return u.slot.Release()
}

// patchRel32 rewrites the rel32 displacement ending at end (the
// executable address after the branch) so the branch goes to target.
// Links and unlinks change these 4 bytes only, never the instruction's
// length. Callers run only while the application is stopped in the
// dispatcher, on the thread that will run the code next.
func (u *codeUnit) patchRel32(end, target uintptr) {
	d, ok := mem.Rel32(end, target)
	if !ok {
		panic(fmt.Sprintf("jit: link from %#x to %#x out of rel32 reach inside vmcode", end, target))
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(d))
	u.write(end-4, b[:])
}

// fragment is one translated basic block.
type fragment struct {
	// tag is the application address the block starts at.
	tag uintptr
	// entry is its address in the cache (the indirect-branch prefix).
	entry uintptr
	unit  *codeUnit
	// marks map its code back to the application's state, in address
	// order (xlate_linux_amd64.go), packed (marks_linux_amd64.go).
	marks packedMarks
	// pages are the application pages its translation read (its
	// instructions', and those the register and flag analyses read),
	// each once: a change to any of them deletes the fragment
	// (smc_linux_amd64.go).
	pages []uintptr
	// incoming are the exits (by number) whose branch was patched to
	// enter it directly, and slots the inline-cache slots that jump to
	// it: what deleting it unlinks. Entries whose source is dead, or
	// that were relinked elsewhere since, are skipped then.
	incoming []int
	slots    []slotRef
	// size is its length (prefix, body, exit stubs and literals), and
	// codeLen the length of its instructions, which the literal pool
	// follows. Both fit 32 bits: a fragment lies in one code unit.
	size, codeLen uint32
	// instrs is how many application instructions it holds, nexits the
	// number of its exits.
	instrs, nexits int32
	// prefix is the length of its indirect-branch prefix.
	prefix uint8
	// tables are the translated jump tables with entries that lead to
	// it (jumptable_linux_amd64.go), unlinked like slots.
	tables []*jumpTable
	// dead is set once the fragment is deleted, or from the start for a
	// transient fragment: nothing may link to it, and its own exits and
	// sites are no longer patched.
	dead bool
}

// body returns where direct links and the dispatcher enter the fragment:
// past the prefix that indirect-branch hits enter by.
func (f *fragment) body() uintptr { return f.entry + uintptr(f.prefix) }

// exitKind says what an exit stub leads to.
type exitKind uint8

const (
	// exitDirect continues at a constant application address: the
	// target of a direct branch or call, or the fall-through of a
	// conditional branch or of a block cut short. Linkable.
	exitDirect exitKind = iota
	// exitSyscall stops at a syscall instruction, which the dispatcher
	// performs (or refuses) before continuing after it.
	exitSyscall
	// exitBad stops at an instruction the translator cannot run (a trap,
	// a far transfer, an undecodable or unsupported encoding): Run
	// fails naming it, if execution gets there.
	exitBad
	// exitLearn leaves an indirect-branch site whose inline cache has
	// a free slot, with the target in the context: the dispatcher
	// fills the slot and continues at the target.
	exitLearn
	// exitSiteMiss leaves an indirect-branch site whose target is not
	// in the table, with the target in the context.
	exitSiteMiss
	// exitFlush leaves a client's record whose trace buffer is full:
	// the dispatcher flushes the buffers and enters the cache again
	// just past the exit's branch, where the record is made again.
	// Not linkable.
	exitFlush
	// exitWrap comes before a wrapped function's first instruction:
	// the dispatcher runs the pre hook and enters the cache again just
	// past the exit's branch. Not linkable.
	exitWrap
)

// exit is one exit stub of a fragment. It is kept small (56 bytes): a
// large program has hundreds of thousands.
type exit struct {
	kind exitKind
	// target is the application address: the branch target, the
	// syscall instruction or the bad instruction.
	target uintptr
	// branch is the executable address just after the rel32 that leads
	// to the stub (0 for a stub nothing links), stub the stub's address.
	// The branch is in owner's unit; the stub may be in a later one.
	branch, stub uintptr
	// linked is the fragment the branch goes to directly, or nil.
	linked *fragment
	// ic is the site of an exitLearn or exitSiteMiss.
	ic *icSite
	// owner is the fragment the exit belongs to.
	owner *fragment
}

// badInstr explains an exitBad: what the translator could not run.
type badInstr struct {
	why   string
	bytes []byte
}

// Exit stubs are DynamoRIO's shape, with the context slot instead of TLS:
//
//	mov [rip+ctx.rax], rax   ; 7 bytes
//	mov eax, exit number     ; 5 bytes
//	jmp fcache_return        ; 5 bytes, rel32
const stubLen = 17
