package jit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/procmaps"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
)

// A Program is a freestanding static executable (ET_EXEC, or a static
// PIE) loaded by reachvm itself, as Valgrind loads its client (seed 004):
// its image, a brk area and a stack in memory the machine's VMM records in
// aspacem, run from its first instruction under the translator. It shares
// the address space with reachvm, so every memory system call it makes is
// vetted: nothing it maps, unmaps or protects may touch reachvm's own
// memory (vmcode, vmheap, the cache), and exit ends the run, not the host
// process. Threads, signal handlers and thread-local storage are refused
// with an error naming them.
type Program struct {
	m    *Machine
	path string
	// bias is the load bias (0 for ET_EXEC), [lo, hi) the image.
	bias, lo, hi uintptr
	entry, phdr  uintptr
	phnum        int
	// brk is [brkBase, brkMax), committed up to brkTop (page aligned),
	// the break itself at brkCur.
	brkBase, brkCur, brkTop, brkMax uintptr
	stack, stackSize                uintptr
	// maps are the program's own mmaps, to unmap at Close.
	maps   map[uintptr]uintptr
	closed bool
}

// Sizes of a program's brk area and stack.
const (
	programBrk   = 256 << 20
	programStack = 8 << 20
)

// ProgramError reports a program reachvm will not load.
type ProgramError struct {
	Path, Reason string
}

func (e *ProgramError) Error() string { return fmt.Sprintf("jit: %s: %s", e.Path, e.Reason) }

// pieBases are where a static PIE is placed, below 2 GiB first (where the
// translator's indirect-branch sites take their narrow form).
var pieBases = []uintptr{0x10000000, 0x20000000, 0x30000000, 0x70000000}

// LoadProgram loads the static executable at path into memory the
// machine's VMM records: its PT_LOAD segments (at their addresses for
// ET_EXEC, at a bias for a static PIE, whose R_X86_64_RELATIVE
// relocations it applies), a brk area after the image and a stack.
// It refuses dynamic executables (PT_INTERP), thread-local storage
// (PT_TLS), other machines and relocations other than RELATIVE, and an
// ET_EXEC whose addresses are taken (by reachvm itself when it is not
// built as a PIE: Go links executables at 0x400000, where most static
// programs go too).
func (m *Machine) LoadProgram(path string) (*Program, error) {
	bad := func(format string, args ...any) error {
		return &ProgramError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jit: %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, bad("%v", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, bad("not an x86-64 ELF64 executable")
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, bad("not an executable (%v)", f.Type)
	}
	p := &Program{m: m, path: path, maps: map[uintptr]uintptr{}}
	page := uintptr(4096)
	lo, hi := ^uintptr(0), uintptr(0)
	var dyn *elf.Prog
	for _, ph := range f.Progs {
		switch ph.Type {
		case elf.PT_INTERP:
			return nil, bad("a dynamic executable (PT_INTERP): only static ones run")
		case elf.PT_TLS:
			return nil, bad("thread-local storage (PT_TLS) is not supported")
		case elf.PT_DYNAMIC:
			dyn = ph
		case elf.PT_LOAD:
			if ph.Filesz > ph.Memsz || ph.Off+ph.Filesz > uint64(len(data)) {
				return nil, bad("a PT_LOAD beyond the file")
			}
			lo = min(lo, uintptr(ph.Vaddr)&^(page-1))
			hi = max(hi, roundUp(uintptr(ph.Vaddr+ph.Memsz), page))
		}
	}
	if hi == 0 {
		return nil, bad("no PT_LOAD")
	}
	o, space := m.v.OS(), m.v.Space()
	owner := "client " + filepath.Base(path)
	if len(owner) > 60 {
		owner = owner[:60]
	}
	// The image's span, reserved in one piece.
	var base uintptr
	if f.Type == elf.ET_EXEC {
		if base, err = o.Reserve(lo, hi-lo, mem.Exact); err != nil {
			return nil, bad("its addresses [%#x, %#x) are taken (%s): run reachvm built with -buildmode=pie, or link the program elsewhere (-Wl,-Ttext-segment)", lo, hi, whatIsAt(lo, hi))
		}
	} else {
		for _, b := range pieBases {
			if base, err = o.Reserve(b, hi-lo, mem.Exact); err == nil {
				break
			}
		}
		if err != nil {
			if base, err = o.Reserve(0, hi-lo, mem.Hint); err != nil {
				return nil, fmt.Errorf("jit: %s: reserving the image: %w", path, err)
			}
		}
		p.bias = base - lo
	}
	p.lo, p.hi = base, base+hi-lo
	if err := space.Update(aspacem.Segment{Start: p.lo, End: p.hi, Kind: aspacem.KindReservation, Owner: owner}); err != nil {
		_ = o.Release(p.lo, p.hi-p.lo)
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = p.free()
		}
	}()
	// Segments: committed read-write, filled, relocated, then given
	// their protection (a page shared by two segments gets both's).
	prots := map[uintptr]mem.Prot{}
	for _, ph := range f.Progs {
		if ph.Type != elf.PT_LOAD {
			continue
		}
		a := p.bias + uintptr(ph.Vaddr)&^(page-1)
		b := roundUp(p.bias+uintptr(ph.Vaddr+ph.Memsz), page)
		if err := o.Commit(a, b-a, mem.ProtRW); err != nil {
			return nil, fmt.Errorf("jit: %s: %w", path, err)
		}
		copy(osmem.Bytes(p.bias+uintptr(ph.Vaddr), uintptr(ph.Filesz)), data[ph.Off:ph.Off+ph.Filesz])
		prot := mem.ProtNone
		if ph.Flags&elf.PF_R != 0 {
			prot |= mem.ProtRead
		}
		if ph.Flags&elf.PF_W != 0 {
			prot |= mem.ProtWrite
		}
		if ph.Flags&elf.PF_X != 0 {
			prot |= mem.ProtExec
		}
		for x := a; x < b; x += page {
			prots[x] |= prot
		}
	}
	if f.Type == elf.ET_DYN && dyn != nil {
		if err := p.relocate(dyn); err != nil {
			return nil, bad("%v", err)
		}
	}
	for x := p.lo; x < p.hi; x += page {
		prot, loaded := prots[x]
		if !loaded {
			continue
		}
		if err := o.Protect(x, page, prot); err != nil {
			return nil, fmt.Errorf("jit: %s: %w", path, err)
		}
		if err := space.Update(aspacem.Segment{Start: x, End: x + page, Kind: aspacem.KindAnon, Prot: prot, Owner: owner}); err != nil {
			return nil, err
		}
	}
	p.entry = p.bias + uintptr(f.Entry)
	for _, ph := range f.Progs {
		if ph.Type == elf.PT_PHDR {
			p.phdr = p.bias + uintptr(ph.Vaddr)
		}
	}
	if p.phdr == 0 {
		// The program headers as loaded, if the first PT_LOAD maps the
		// file's start.
		for _, ph := range f.Progs {
			if ph.Type == elf.PT_LOAD && ph.Off == 0 {
				p.phdr = p.bias + uintptr(ph.Vaddr) + uintptr(binary.LittleEndian.Uint64(data[32:]))
				break
			}
		}
	}
	p.phnum = len(f.Progs)
	// brk: a reservation right after the image, committed as it grows
	// (Valgrind's), so that the break never lands on anything else.
	if b, err := o.Reserve(p.hi, programBrk, mem.Exact); err == nil {
		p.brkBase = b
	} else if b, err = o.Reserve(0, programBrk, mem.Hint); err == nil {
		p.brkBase = b
	} else {
		return nil, fmt.Errorf("jit: %s: reserving the brk area: %w", path, err)
	}
	p.brkCur, p.brkTop, p.brkMax = p.brkBase, p.brkBase, p.brkBase+programBrk
	if err := space.Update(aspacem.Segment{Start: p.brkBase, End: p.brkMax, Kind: aspacem.KindReservation, Owner: "client brk"}); err != nil {
		return nil, err
	}
	p.stackSize = programStack
	if p.stack, err = o.Reserve(0, p.stackSize, mem.Hint); err != nil {
		return nil, fmt.Errorf("jit: %s: reserving the stack: %w", path, err)
	}
	if err := o.Commit(p.stack, p.stackSize, mem.ProtRW); err != nil {
		_ = o.Release(p.stack, p.stackSize)
		p.stack = 0
		return nil, fmt.Errorf("jit: %s: committing the stack: %w", path, err)
	}
	if err := space.Update(aspacem.Segment{Start: p.stack, End: p.stack + p.stackSize, Kind: aspacem.KindAnon, Prot: mem.ProtRW, Owner: "client stack"}); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// whatIsAt names what /proc/self/maps has in [lo, hi), for errors.
func whatIsAt(lo, hi uintptr) string {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return "unknown"
	}
	var names []string
	_ = procmaps.Parse(data, func(e *procmaps.Entry) bool {
		if e.Start < hi && lo < e.End {
			n := string(e.Name)
			if n == "" {
				n = "anonymous memory"
			}
			if len(names) == 0 || names[len(names)-1] != n {
				names = append(names, n)
			}
		}
		return true
	})
	if len(names) == 0 {
		return "by something the kernel does not show"
	}
	return "by " + strings.Join(names, ", ")
}

// DT_RELR and DT_RELRSZ, which debug/elf does not name.
const (
	dtRELR   elf.DynTag = 36
	dtRELRSZ elf.DynTag = 35
)

// errno returns -e as the kernel returns a failed system call's result.
func errno(e unix.Errno) uint64 { return uint64(-int64(e)) }

// relocate applies a static PIE's relocations, found through its
// PT_DYNAMIC as loaded: DT_RELA (R_X86_64_RELATIVE only) and DT_RELR.
func (p *Program) relocate(dyn *elf.Prog) error {
	at := func(vaddr uint64, n uintptr) ([]byte, error) {
		a := p.bias + uintptr(vaddr)
		if a < p.lo || a+n > p.hi || a+n < a {
			return nil, fmt.Errorf("dynamic table points outside the image (%#x)", vaddr)
		}
		return osmem.Bytes(a, n), nil
	}
	d, err := at(dyn.Vaddr, uintptr(dyn.Memsz))
	if err != nil {
		return err
	}
	var rela, relasz, relr, relrsz uint64
	for i := 0; i+16 <= len(d); i += 16 {
		tag, val := elf.DynTag(binary.LittleEndian.Uint64(d[i:])), binary.LittleEndian.Uint64(d[i+8:])
		if tag == elf.DT_NULL {
			break
		}
		switch tag {
		case elf.DT_RELA:
			rela = val
		case elf.DT_RELASZ:
			relasz = val
		case dtRELR:
			relr = val
		case dtRELRSZ:
			relrsz = val
		case elf.DT_REL, elf.DT_JMPREL, elf.DT_NEEDED, elf.DT_TEXTREL:
			return fmt.Errorf("dynamic tag %v is not supported in a static executable", tag)
		}
	}
	word := func(vaddr uint64) ([]byte, error) { return at(vaddr, 8) }
	if relasz != 0 {
		r, err := at(rela, uintptr(relasz))
		if err != nil {
			return err
		}
		for i := 0; i+24 <= len(r); i += 24 {
			off, info, add := binary.LittleEndian.Uint64(r[i:]), binary.LittleEndian.Uint64(r[i+8:]), binary.LittleEndian.Uint64(r[i+16:])
			if t := elf.R_X86_64(info & 0xffffffff); t != elf.R_X86_64_RELATIVE {
				return fmt.Errorf("relocation %v is not supported in a static executable", t)
			}
			w, err := word(off)
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(w, uint64(p.bias)+add)
		}
	}
	if relrsz != 0 {
		r, err := at(relr, uintptr(relrsz))
		if err != nil {
			return err
		}
		var where uint64
		for i := 0; i+8 <= len(r); i += 8 {
			e := binary.LittleEndian.Uint64(r[i:])
			if e&1 == 0 {
				w, err := word(e)
				if err != nil {
					return err
				}
				binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)+uint64(p.bias))
				where = e + 8
				continue
			}
			for k := uint64(0); k < 63; k++ {
				if e>>(k+1)&1 != 0 {
					w, err := word(where + 8*k)
					if err != nil {
						return err
					}
					binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)+uint64(p.bias))
				}
			}
			where += 8 * 63
		}
	}
	return nil
}

// Run runs the program from its entry point with argv and envp on its
// stack (and the auxiliary vector a static program reads: AT_PHDR,
// AT_PAGESZ, AT_RANDOM, AT_ENTRY, ...) and returns its exit status. It
// returns an error instead for anything the translator refuses: an
// unsupported instruction or system call (a thread, a signal handler, a
// TLS set-up), a jump to non-code. The program's output goes to the
// process's own file descriptors.
func (p *Program) Run(argv, envp []string) (int, error) {
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || p.closed {
		return 0, errors.New("jit: machine or program closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sp, err := p.buildStack(argv, envp)
	if err != nil {
		return 0, err
	}
	clear(m.mem[ctxGPR : ctxGPR+16*8])
	m.setReg(amd64.RSP, uint64(sp))
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], initialFlags)
	resetVectorState(m.mem[ctxXsave : ctxXsave+m.lay.xsaveSize])
	m.client = p
	defer func() { m.client = nil }()
	_, err = m.dispatch(p.entry)
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code, nil
	}
	if err == nil {
		err = fmt.Errorf("jit: %s returned from its entry point", p.path)
	}
	return 0, err
}

// buildStack lays out argc, argv, envp and the auxiliary vector at the top
// of the stack, as the kernel does for a new process, and returns the
// stack pointer (at argc, 16-byte aligned).
func (p *Program) buildStack(argv, envp []string) (uintptr, error) {
	top := p.stack + p.stackSize
	mem := osmem.Bytes(p.stack, p.stackSize)
	pos := p.stackSize
	putString := func(s string) uintptr {
		pos -= uintptr(len(s) + 1)
		copy(mem[pos:], s)
		mem[pos+uintptr(len(s))] = 0
		return p.stack + pos
	}
	var argp, envpp []uintptr
	execfn := putString(p.path)
	for _, s := range envp {
		envpp = append(envpp, putString(s))
	}
	for _, s := range argv {
		argp = append(argp, putString(s))
	}
	platform := putString("x86_64")
	pos -= 16
	random := p.stack + pos
	if _, err := unix.Getrandom(mem[pos:pos+16], 0); err != nil {
		for i := range 16 {
			mem[pos+uintptr(i)] = byte(i * 37)
		}
	}
	_, _, _, edx := cpuid(1, 0)
	aux := [][2]uint64{
		{3, uint64(p.phdr)},        // AT_PHDR
		{4, 56},                    // AT_PHENT
		{5, uint64(p.phnum)},       // AT_PHNUM
		{6, 4096},                  // AT_PAGESZ
		{7, 0},                     // AT_BASE
		{8, 0},                     // AT_FLAGS
		{9, uint64(p.entry)},       // AT_ENTRY
		{11, uint64(os.Getuid())},  // AT_UID
		{12, uint64(os.Geteuid())}, // AT_EUID
		{13, uint64(os.Getgid())},  // AT_GID
		{14, uint64(os.Getegid())}, // AT_EGID
		{15, uint64(platform)},     // AT_PLATFORM
		{16, uint64(edx)},          // AT_HWCAP
		{17, 100},                  // AT_CLKTCK
		{23, 0},                    // AT_SECURE
		{25, uint64(random)},       // AT_RANDOM
		{31, uint64(execfn)},       // AT_EXECFN
		{0, 0},                     // AT_NULL
	}
	words := 1 + len(argp) + 1 + len(envpp) + 1 + 2*len(aux)
	pos = (pos - uintptr(words)*8) &^ 15
	sp := p.stack + pos
	w := pos
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(mem[w:], v)
		w += 8
	}
	put(uint64(len(argp)))
	for _, a := range argp {
		put(uint64(a))
	}
	put(0)
	for _, e := range envpp {
		put(uint64(e))
	}
	put(0)
	for _, a := range aux {
		put(a[0])
		put(a[1])
	}
	if sp < p.stack+4096 || sp > top {
		return 0, fmt.Errorf("jit: %s: arguments and environment do not fit the stack", p.path)
	}
	return sp, nil
}

// Close unmaps the program: its image, brk area, stack and whatever it
// mapped itself and left mapped.
func (p *Program) Close() error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	// The machine's translations of the image go with it.
	p.m.flush()
	return p.free()
}

func (p *Program) free() error {
	o, space := p.m.v.OS(), p.m.v.Space()
	var errs []error
	release := func(a, n uintptr) {
		if n == 0 {
			return
		}
		if err := o.Release(a, n); err != nil {
			errs = append(errs, err)
			return
		}
		errs = append(errs, space.Update(aspacem.Segment{Start: a, End: a + n, Kind: aspacem.KindFree}))
	}
	release(p.lo, p.hi-p.lo)
	release(p.brkBase, p.brkMax-p.brkBase)
	release(p.stack, p.stackSize)
	p.lo, p.hi, p.brkBase, p.brkMax, p.stack = 0, 0, 0, 0, 0
	for a, n := range p.maps {
		if _, _, e := unix.Syscall(unix.SYS_MUNMAP, a, n, 0); e != 0 {
			errs = append(errs, e)
		}
		delete(p.maps, a)
	}
	return errors.Join(errs...)
}

// clientOwned reports whether [a, a+n) overlaps the program's own image,
// brk area or stack.
func (p *Program) clientOwned(a, n uintptr) bool {
	over := func(lo, hi uintptr) bool { return hi > lo && a < hi && lo < a+n }
	return over(p.lo, p.hi) || over(p.brkBase, p.brkMax) || over(p.stack, p.stack+p.stackSize)
}

// syscall handles the program's memory system calls: brk, emulated on
// the brk area; mmap with a fixed address, munmap, mprotect, mremap and
// madvise, vetted (reachvm's memory was vetted already by Machine.vet;
// here the program's image, brk area and stack, which aspacem records,
// may be reprotected but not unmapped or remapped). handled false sends
// the call to the kernel; mmaps the kernel makes are remembered, to unmap
// at Close.
func (p *Program) syscall(nr uint64, a [6]uintptr) (ret uint64, handled bool) {
	const page = 4096
	o, space := p.m.v.OS(), p.m.v.Space()
	switch nr {
	case unix.SYS_BRK:
		want := a[0]
		if want < p.brkBase || want > p.brkMax {
			return uint64(p.brkCur), true
		}
		top := roundUp(want, page)
		switch {
		case top > p.brkTop:
			if err := o.Commit(p.brkTop, top-p.brkTop, mem.ProtRW); err != nil {
				return uint64(p.brkCur), true
			}
			_ = space.Update(aspacem.Segment{Start: p.brkTop, End: top, Kind: aspacem.KindAnon, Prot: mem.ProtRW, Owner: "client brk"})
		case top < p.brkTop:
			if err := o.Decommit(top, p.brkTop-top); err != nil {
				return uint64(p.brkCur), true
			}
			_ = space.Update(aspacem.Segment{Start: top, End: p.brkTop, Kind: aspacem.KindReservation, Owner: "client brk"})
		}
		p.brkTop, p.brkCur = top, want
		return uint64(want), true
	case unix.SYS_MMAP:
		if a[3]&(unix.MAP_FIXED|unix.MAP_FIXED_NOREPLACE) != 0 && p.clientOwned(a[0], a[1]) {
			return errno(unix.EINVAL), true
		}
		r1, _, e := unix.Syscall6(unix.SYS_MMAP, a[0], a[1], a[2], a[3], a[4], a[5])
		if e != 0 {
			return uint64(-int64(e)), true
		}
		p.maps[r1] = roundUp(a[1], page)
		return uint64(r1), true
	case unix.SYS_MPROTECT:
		if !p.clientOwned(a[0], a[1]) {
			return 0, false
		}
		prot := mem.Prot(a[2] & 7)
		n := roundUp(a[1], page)
		if err := o.Protect(a[0], n, prot); err != nil {
			return errno(unix.ENOMEM), true
		}
		owner := "client " + filepath.Base(p.path)
		switch {
		case a[0] >= p.brkBase && a[0] < p.brkMax:
			owner = "client brk"
		case a[0] >= p.stack && a[0] < p.stack+p.stackSize:
			owner = "client stack"
		}
		_ = space.Update(aspacem.Segment{Start: a[0], End: a[0] + n, Kind: aspacem.KindAnon, Prot: prot, Owner: owner})
		return 0, true
	case unix.SYS_MUNMAP, unix.SYS_MREMAP, unix.SYS_MADVISE:
		if p.clientOwned(a[0], a[1]) {
			return errno(unix.EINVAL), true
		}
		if nr == unix.SYS_MUNMAP {
			r1, _, e := unix.Syscall(unix.SYS_MUNMAP, a[0], a[1], 0)
			if e != 0 {
				return uint64(-int64(e)), true
			}
			delete(p.maps, a[0])
			return uint64(r1), true
		}
	}
	return 0, false
}
