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
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/elfrel"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// A Program is a freestanding static executable (ET_EXEC, or a static
// PIE) loaded by reachvm itself, as Valgrind loads its client: its image,
// a brk area and a stack in the machine's VMM's application memory
// (vmm.VMM.ReserveApp and the calls after it, which record every change in
// aspacem), run from its first instruction under the translator. It shares
// the address space with reachvm, so every memory system call it makes is
// vetted: nothing it maps, unmaps or protects may touch reachvm's own
// memory (vmcode, vmheap, the cache), and exit ends the run, not the host
// process. Its signals (handlers, masks, delivery on its own stack) are
// emulated (signal_linux_amd64.go); the processes it creates run
// natively from the call on (fork_linux_amd64.go), and a program it
// executes runs under reachvm when Options.Exec says how
// (exec_linux_amd64.go); threads are refused with an error naming them.
type Program struct {
	m    *Machine
	path string
	// owner annotates the image in aspacem ("client NAME"); the brk
	// area, the stack and the program's own mmaps carry it with " brk",
	// " stack" and mmapOwner's suffix. Immutable after LoadProgram.
	owner, mmapOwner string
	// bias is the load bias (0 for ET_EXEC), [lo, hi) the image.
	bias, lo, hi uintptr
	entry, phdr  uintptr
	phnum        int
	// brk is [brkBase, brkMax), committed up to brkTop (page aligned),
	// the break itself at brkCur.
	brkBase, brkCur, brkTop, brkMax uintptr
	stack, stackSize                uintptr
	// stackGuard is the size of the inaccessible reservation below the
	// stack, released with it.
	stackGuard uintptr
	// refusals are the memory system calls refused or failed, the first
	// maxRefusals of them; nrefused counts them all.
	refusals []Refusal
	nrefused int
	closed   bool
	// mod names and unwinds the program's code for the tools
	// Options.views selects, nil without them. Immutable after
	// LoadProgram.
	mod *module
	// gdb is the program's object registered with gdb (Options.GDB),
	// until free.
	gdb *gdbEntry
	// sig is the program's signal state (signal_linux_amd64.go), reset
	// by each Run.
	sig signals
	// shareHostFS makes the program's FS Go's and the routines switch
	// nothing: BenchmarkExitFS's baseline, not a mode to run programs
	// in (their arch_prctl then changes nothing the CPU sees).
	shareHostFS bool
	// tid is what the program's thread registered with the kernel
	// (threadid_linux_amd64.go), reset by each Run.
	tid threadID
	// execFn is what AT_EXECFN names, "" for path (Program.Inherit).
	execFn string
}

// Sizes of a program's brk area and stack.
const (
	programBrk   = 256 << 20
	programStack = 8 << 20
	// programStackGuard is the kernel's default stack guard gap (256
	// pages).
	programStackGuard = 1 << 20
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
func (m *Machine) LoadProgram(path string) (_ *Program, err error) {
	bad := func(format string, args ...any) error {
		return &ProgramError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	if m.isClosed() {
		return nil, fmt.Errorf("jit: loading %s: %w", path, ErrClosed)
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
	p := &Program{m: m, path: path}
	page := uintptr(4096)
	lo, hi := ^uintptr(0), uintptr(0)
	var dyn *elf.Prog
	// selfRelocating is set for a program whose start code applies its
	// own relocations (a C library's static PIE start-up): the loader,
	// as the kernel, then applies none.
	selfRelocating := false
	for _, ph := range f.Progs {
		switch ph.Type {
		case elf.PT_INTERP:
			return nil, bad("a dynamic executable (PT_INTERP): only static ones run")
		case elf.PT_TLS:
			// The C library's start code sets up the thread's TLS
			// block from PT_TLS (found through AT_PHDR) and sets FS
			// with arch_prctl, as for a native start; the kernel
			// does nothing more.
			selfRelocating = true
		case elf.PT_DYNAMIC:
			dyn = ph
		case elf.PT_LOAD:
			if ph.Filesz > ph.Memsz || ph.Off+ph.Filesz > uint64(len(data)) {
				return nil, bad("a PT_LOAD beyond the file")
			}
			end, ok := mem.AlignUp(ph.Vaddr+ph.Memsz, uint64(page))
			if ph.Vaddr+ph.Memsz < ph.Vaddr || !ok {
				return nil, bad("a PT_LOAD past the end of the address space")
			}
			lo = min(lo, mem.AlignDown(uintptr(ph.Vaddr), page))
			hi = max(hi, uintptr(end))
		}
	}
	if hi == 0 {
		return nil, bad("no PT_LOAD")
	}
	v := m.v
	name := filepath.Base(path)
	if len(name) > 50 {
		name = name[:50]
	}
	p.owner = "client " + name
	p.mmapOwner = fmt.Sprintf("client %s mmap %d", name, programSerial.Add(1))
	// The image's span, reserved in one piece.
	span := hi - lo
	var img mem.Range
	if f.Type == elf.ET_EXEC {
		if img, err = v.ReserveApp(lo, span, mem.Exact, p.owner); err != nil {
			if errors.Is(err, mem.ErrExists) {
				return nil, bad("its addresses [%#x, %#x) are taken (%s): run reachvm built with -buildmode=pie, or link the program elsewhere (-Wl,-Ttext-segment)", lo, hi, whatIsAt(v, lo, hi))
			}
			return nil, fmt.Errorf("jit: %s: reserving the image: %w", path, err)
		}
	} else {
		for _, b := range pieBases {
			if img, err = v.ReserveApp(b, span, mem.Exact, p.owner); err == nil {
				break
			}
		}
		if err != nil {
			if img, err = v.ReserveApp(0, span, mem.Hint, p.owner); err != nil {
				return nil, fmt.Errorf("jit: %s: reserving the image: %w", path, err)
			}
		}
		p.bias = img.Start - lo
	}
	p.lo, p.hi = img.Start, img.End
	ok := false
	defer func() {
		if !ok {
			// Nothing of a failed load stays behind, or the error says
			// what did.
			if ferr := p.free(); ferr != nil {
				err = errors.Join(err, fmt.Errorf("jit: %s: undoing the load: %w", path, ferr))
			}
		}
	}()
	// Segments: committed read-write, filled, relocated, then given
	// their protection (a page shared by two segments gets both's).
	prots := map[uintptr]mem.Prot{}
	for _, ph := range f.Progs {
		if ph.Type != elf.PT_LOAD {
			continue
		}
		// The first pass checked that every segment's end aligns up
		// without overflow, and the bias is page aligned.
		end, _ := mem.AlignUp(uintptr(ph.Vaddr+ph.Memsz), page)
		a, b := p.bias+mem.AlignDown(uintptr(ph.Vaddr), page), p.bias+end
		if err := v.CommitApp(mem.Range{Start: a, End: b}, mem.ProtRW); err != nil {
			return nil, fmt.Errorf("jit: %s: %w", path, err)
		}
		copy(rawmem.Bytes(p.bias+uintptr(ph.Vaddr), uintptr(ph.Filesz)), data[ph.Off:ph.Off+ph.Filesz])
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
	if f.Type == elf.ET_DYN && dyn != nil && !selfRelocating {
		if err := p.relocate(dyn); err != nil {
			return nil, bad("%v", err)
		}
	}
	// One protect per run of loaded pages with the same protection.
	for x := p.lo; x < p.hi; {
		prot, loaded := prots[x]
		end := x + page
		for loaded && end < p.hi {
			if q, ok := prots[end]; !ok || q != prot {
				break
			}
			end += page
		}
		if loaded {
			if err := v.ProtectApp(mem.Range{Start: x, End: end}, prot); err != nil {
				return nil, fmt.Errorf("jit: %s: %w", path, err)
			}
		}
		x = end
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
	brk, err := v.ReserveApp(p.hi, programBrk, mem.Exact, p.owner+" brk")
	if err != nil {
		if brk, err = v.ReserveApp(0, programBrk, mem.Hint, p.owner+" brk"); err != nil {
			return nil, fmt.Errorf("jit: %s: reserving the brk area: %w", path, err)
		}
	}
	p.brkBase, p.brkMax = brk.Start, brk.End
	p.brkCur, p.brkTop = p.brkBase, p.brkBase
	// The stack sits on a reserved, inaccessible guard, as the
	// kernel keeps a gap below a main thread's stack: a program that
	// runs out of stack faults there rather than writing over
	// whatever lies below.
	stack, err := v.ReserveApp(0, programStackGuard+programStack, mem.Hint, p.owner+" stack")
	if err != nil {
		return nil, fmt.Errorf("jit: %s: reserving the stack: %w", path, err)
	}
	p.stackGuard = programStackGuard
	p.stack, p.stackSize = stack.Start+programStackGuard, programStack
	if err := v.CommitApp(mem.Range{Start: p.stack, End: stack.End}, mem.ProtRW); err != nil {
		return nil, fmt.Errorf("jit: %s: committing the stack: %w", path, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		// Closed while loading: the machine's Close did not see p.
		return nil, fmt.Errorf("jit: loading %s: %w", path, ErrClosed)
	}
	if m.opts.views() {
		p.mod = newModule(filepath.Base(path), p.lo, f, p.bias, m.opts.JitDump)
	}
	if m.opts.GDB {
		p.gdb = gdbRegister(programObject(data, f, p.bias))
	}
	m.programs[p] = struct{}{}
	ok = true
	return p, nil
}

// isClosed reports whether m is closed.
func (m *Machine) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// programSerial numbers programs, so that each one's mmaps carry an owner
// of their own in aspacem, which Close releases by.
var programSerial atomic.Uint64

// whatIsAt names what lies in [lo, hi) as aspacem records it, refreshed
// from the kernel first, for errors: reachvm's own memory by its owner,
// the rest by the kernel's name.
func whatIsAt(v *vmm.VMM, lo, hi uintptr) string {
	if err := v.Refresh(); err != nil {
		return "by something unknown: " + err.Error()
	}
	var names []string
	for _, s := range v.Space().Segments(lo, hi) {
		var n string
		switch {
		case s.Kind == aspacem.KindFree:
			continue
		case s.Kind.Owned():
			n = "reachvm's " + s.Owner
		case s.Name != "":
			n = s.Name
		default:
			n = "anonymous memory"
		}
		if len(names) == 0 || names[len(names)-1] != n {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "by something the kernel does not show"
	}
	return "by " + strings.Join(names, ", ")
}

// DT_RELR, DT_RELRSZ and DT_RELRENT, which debug/elf does not name.
const (
	dtRELR    elf.DynTag = 36
	dtRELRSZ  elf.DynTag = 35
	dtRELRENT elf.DynTag = 37
)

// errno returns -e as the kernel returns a failed system call's result.
func errno(e unix.Errno) uint64 { return uint64(-int64(e)) }

// relocate applies a freestanding static PIE's relocations, found through
// its PT_DYNAMIC as loaded: DT_RELA (R_X86_64_RELATIVE only) and DT_RELR.
// The kernel applies none; a program with no start code of its own to
// apply them (built with -nostdlib) is run as if it had some. One whose
// relocations show a C library's start code is left to it.
func (p *Program) relocate(dyn *elf.Prog) error {
	at := func(vaddr uint64, n uintptr) ([]byte, error) {
		a := p.bias + uintptr(vaddr)
		if a < p.lo || a+n > p.hi || a+n < a {
			return nil, fmt.Errorf("dynamic table points outside the image (%#x)", vaddr)
		}
		return rawmem.Bytes(a, n), nil
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
		case dtRELRENT:
			if val != elfrel.RELREntSize {
				return fmt.Errorf("DT_RELRENT %d, want %d", val, elfrel.RELREntSize)
			}
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
		// Relocations other than RELATIVE (a C library's IRELATIVE
		// ones, for its ifuncs) are applied by the program's own start
		// code, which applies the RELATIVE ones too: the loader then
		// leaves them all to it, as the kernel does.
		for i := 0; i+24 <= len(r); i += 24 {
			if t := elf.R_X86_64(binary.LittleEndian.Uint64(r[i+8:]) & 0xffffffff); t != elf.R_X86_64_RELATIVE {
				return nil
			}
		}
		for i := 0; i+24 <= len(r); i += 24 {
			off, add := binary.LittleEndian.Uint64(r[i:]), binary.LittleEndian.Uint64(r[i+16:])
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
		err = elfrel.DecodeRELR(r, func(off uint64) error {
			w, err := word(off)
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)+uint64(p.bias))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Run runs the program from its entry point with argv and envp on its
// stack (and the auxiliary vector a static program reads: AT_PHDR,
// AT_PAGESZ, AT_RANDOM, AT_ENTRY, ...) and returns its exit status. It
// returns an error instead for anything the translator refuses: an
// unsupported instruction or system call (a thread, a TLS set-up), a
// jump to non-code; a *SignalError when a signal's default action ends
// the program. The program's output goes to the
// process's own file descriptors.
func (p *Program) Run(argv, envp []string) (int, error) {
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || p.closed {
		return 0, fmt.Errorf("jit: running %s: %w", p.path, ErrClosed)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := p.start(argv, envp); err != nil {
		return 0, err
	}
	defer p.stop()
	done, err := m.runningOn(sigtramp.AllCatchable())
	if err != nil {
		return 0, err
	}
	defer done()
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

// start sets up a run: the stack with argv and envp, the registers, flags
// and vector state at the entry point, a new process's signal state, and
// the program as the machine's client.
//
// Preconditions: p.m.mu is held, the OS thread locked.
func (p *Program) start(argv, envp []string) error {
	m := p.m
	sp, err := p.buildStack(argv, envp)
	if err != nil {
		return err
	}
	clear(m.mem[ctxGPR : ctxGPR+16*8])
	m.setReg(amd64.RSP, uint64(sp))
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], initialFlags)
	resetVectorState(m.mem[ctxXsave : ctxXsave+m.lay.xsaveSize])
	// A new process's FS base is 0: reading %fs before the program sets
	// it faults, as natively.
	m.setAppFS(0)
	m.setHostFS(currentFS())
	if p.shareHostFS {
		m.setHostFS(0)
	}
	p.tid = threadID{}
	p.resetSignals()
	m.client = p
	return nil
}

// stop ends what start set up.
func (p *Program) stop() {
	p.endSignals()
	p.m.setAppFS(0)
	p.m.setHostFS(0)
	p.m.client = nil
}

// buildStack lays out argc, argv, envp and the auxiliary vector at the top
// of the stack, as the kernel does for a new process, and returns the
// stack pointer (at argc, 16-byte aligned).
func (p *Program) buildStack(argv, envp []string) (uintptr, error) {
	// Code a previous run made of its stack is written over.
	p.m.willWrite(mem.Range{Start: p.stack, End: p.stack + p.stackSize})
	top := p.stack + p.stackSize
	mem := rawmem.Bytes(p.stack, p.stackSize)
	pos := p.stackSize
	putString := func(s string) uintptr {
		pos -= uintptr(len(s) + 1)
		copy(mem[pos:], s)
		mem[pos+uintptr(len(s))] = 0
		return p.stack + pos
	}
	var argp, envpp []uintptr
	execfnPath := p.path
	if p.execFn != "" {
		execfnPath = p.execFn
	}
	execfn := putString(execfnPath)
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
// mapped itself and left mapped. Its machine's Close closes it too. A
// second Close, or one after the machine's, fails with an error wrapping
// ErrClosed.
func (p *Program) Close() error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if p.closed {
		return fmt.Errorf("jit: closing %s: %w", p.path, ErrClosed)
	}
	p.closed = true
	delete(p.m.programs, p)
	// The machine's translations of the image go with it, and the code
	// map's record of it; the pages reachvm write-protected get their
	// protection back before they go.
	p.m.flush()
	err := p.free()
	p.m.codes.reset()
	return err
}

// free releases the program's image, brk area, stack and whatever it
// mapped itself and left mapped.
func (p *Program) free() error {
	v := p.m.v
	var errs []error
	release := func(a, n uintptr) {
		if n != 0 {
			errs = append(errs, v.ReleaseApp(mem.Range{Start: a, End: a + n}))
		}
	}
	release(p.lo, p.hi-p.lo)
	release(p.brkBase, p.brkMax-p.brkBase)
	release(p.stack-p.stackGuard, p.stackGuard+p.stackSize)
	p.lo, p.hi, p.brkBase, p.brkMax, p.stack, p.stackSize, p.stackGuard = 0, 0, 0, 0, 0, 0, 0
	if p.gdb != nil {
		gdbUnregister(p.gdb)
		p.gdb = nil
	}
	for _, s := range v.Space().Owned() {
		if s.Owner == p.mmapOwner {
			release(s.Start, s.Size())
		}
	}
	return errors.Join(errs...)
}

// clientOwned reports whether [a, a+n) overlaps the program's own image,
// brk area or stack.
func (p *Program) clientOwned(a, n uintptr) bool {
	over := func(lo, hi uintptr) bool { return hi > lo && a < hi && lo < a+n }
	return over(p.lo, p.hi) || over(p.brkBase, p.brkMax) || over(p.stack-p.stackGuard, p.stack+p.stackSize)
}
