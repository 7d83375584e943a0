package jit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
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

// A Program is an executable (ET_EXEC or ET_DYN, static or dynamic)
// loaded by reachvm itself, as Valgrind loads its client: its image, its
// interpreter's (ld.so) if it is dynamic, a brk area and a stack in the
// machine's VMM's application memory (vmm.VMM.ReserveApp and the calls
// after it, which record every change in aspacem), run from the first
// instruction (the interpreter's, or its own) under the translator. It shares
// the address space with reachvm, so every memory system call it makes is
// vetted: nothing it maps, unmaps or protects may touch reachvm's own
// memory (vmcode, vmheap, the cache), and exit ends the run, not the host
// process. Its signals (handlers, masks, delivery on its own stack) are
// emulated (signal_linux_amd64.go); its threads (clone with
// CLONE_THREAD) each run under translation on an OS thread and a machine
// of their own (thread_linux_amd64.go); the processes it creates run
// natively from the call on (fork_linux_amd64.go), and a program it
// executes runs under reachvm when Options.Exec says how
// (exec_linux_amd64.go).
type Program struct {
	// m is the machine the program was loaded into, which runs the
	// thread Run starts.
	m *Machine
	// mu guards refusals, nrefused, proc, threadStats, idle and
	// hostFDs, which every thread updates.
	mu sync.Mutex
	// path is the program's path as given (AT_EXECFN), exe what
	// /proc/self/exe says for it (absolute, symbolic links resolved).
	// Immutable.
	path, exe string
	// interp is PT_INTERP's path ("" for a static program), loaded at
	// [interpLo, interpHi) with bias interpBias (AT_BASE). Immutable
	// after LoadProgram.
	interp                         string
	interpLo, interpHi, interpBias uintptr
	// runAt is where a run begins: the interpreter's entry point, or
	// the program's. Immutable after LoadProgram.
	runAt uintptr
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
	// hostFDs are the descriptors the program may not close or replace
	// (fds_linux_amd64.go), in increasing order: those open and
	// close-on-exec when it started, and those reachvm opened since.
	hostFDs []int
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
	// by each Run, and its set of threads.
	sig signals
	// execFn is what AT_EXECFN names, "" for path (Program.Inherit).
	execFn string
	// proc is the state of the process calls reachvm answers for the
	// program (proccall_linux_amd64.go), reset by each Run.
	proc procState
	// threadStats are the counts of the machines of the threads that
	// ended (Machine.Stats adds them). idle are machines of ended
	// threads kept for the next ones (thread_linux_amd64.go).
	threadStats Stats
	idle        []*Machine
	// noIdle keeps no machine of an ended thread: each thread gets a new
	// one (the benchmarks' fresh cases). Set before Run.
	noIdle bool
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

// pieBases are where a position-independent executable (a static PIE, or
// a dynamic program and its interpreter) is placed, below 2 GiB first
// (where the translator's indirect-branch sites take their narrow form,
// and within rel32 reach of vmcode where reachvm run places it): those
// within reach of vmcode, else as near vmcode as there is room.
var pieBases = []uintptr{0x10000000, 0x20000000, 0x30000000, 0x70000000}

// maxInterpPath bounds PT_INTERP's path, as the kernel bounds it (PATH_MAX).
const maxInterpPath = 4096

// LoadProgram loads the executable at path into memory the machine's
// VMM records, as the kernel's execve lays it out: its PT_LOAD segments
// (at their addresses for ET_EXEC, at a bias chosen from pieBases for
// ET_DYN), a brk area after the image and a stack; for a dynamic
// executable (PT_INTERP), its interpreter (the system's ld.so, an ET_DYN)
// too, where the run starts, and which maps and relocates the rest. A
// static PIE's R_X86_64_RELATIVE and DT_RELR relocations are applied
// here, as a freestanding one does not relocate itself. It refuses
// thread-local storage (PT_TLS) in a static executable, other machines,
// other relocations in a static PIE, and an ET_EXEC whose addresses are
// taken (by reachvm itself when it is not built as a PIE: Go links
// executables at 0x400000, where most non-PIE programs go too).
func (m *Machine) LoadProgram(path string) (_ *Program, err error) {
	bad := func(format string, args ...any) error {
		return &ProgramError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	if m.isClosed() {
		return nil, fmt.Errorf("jit: loading %s: %w", path, ErrClosed)
	}
	v := m.v
	// The views keep reading the program's symbols, and gdb is handed
	// the whole file: they read it all. Otherwise it is mapped.
	x, err := openExecFile(v, path, m.opts.views())
	if err != nil {
		return nil, fmt.Errorf("jit: %w", err)
	}
	defer x.close(v)
	var head [2 + 200 + 1]byte
	n, err := x.readAt(head[:], 0)
	if err != nil {
		return nil, fmt.Errorf("jit: %s: %w", path, err)
	}
	if bytes.HasPrefix(head[:n], []byte("#!")) {
		line, _, _ := bytes.Cut(head[2:n], []byte("\n"))
		return nil, bad("a script (#!%s): reachvm runs ELF executables; run its interpreter with it instead", bytes.TrimSpace(line[:min(len(line), 200)]))
	}
	if err := x.parse(); err != nil {
		return nil, bad("%v", err)
	}
	f := x.elf
	p := &Program{m: m, path: path, exe: x.name}
	var dyn *elf.Prog
	// selfRelocating is set for a program whose start code applies its
	// own relocations (a C library's static PIE start-up): the loader,
	// as the kernel, then applies none.
	selfRelocating := false
	for _, ph := range f.Progs {
		switch ph.Type {
		case elf.PT_INTERP:
			if ph.Filesz == 0 || ph.Filesz > maxInterpPath || ph.Off+ph.Filesz > uint64(x.size) {
				return nil, bad("a PT_INTERP of %d bytes at %#x, beyond the file or too long", ph.Filesz, ph.Off)
			}
			s := make([]byte, ph.Filesz)
			if n, err := x.readAt(s, int64(ph.Off)); err != nil || n < len(s) {
				return nil, bad("reading its PT_INTERP: %v", err)
			}
			if i := bytes.IndexByte(s, 0); i >= 0 {
				s = s[:i]
			}
			if len(s) == 0 {
				return nil, bad("an empty PT_INTERP")
			}
			p.interp = string(s)
		case elf.PT_TLS:
			// The C library's start code (ld.so's, for a dynamic
			// program) sets up the thread's TLS block from PT_TLS
			// (found through AT_PHDR) and sets FS with arch_prctl,
			// as for a native start; the kernel does nothing more.
			selfRelocating = true
		case elf.PT_DYNAMIC:
			dyn = ph
		}
	}
	var ix *execFile
	var interp *elf.File
	if p.interp != "" {
		if ix, err = openExecFile(v, p.interp, false); err != nil {
			return nil, bad("its interpreter: %v", err)
		}
		defer ix.close(v)
		if err = ix.parse(); err != nil {
			return nil, bad("its interpreter %s: %v", p.interp, err)
		}
		interp = ix.elf
		if interp.Type != elf.ET_DYN {
			return nil, bad("its interpreter %s is %v, not a shared object (ET_DYN)", p.interp, interp.Type)
		}
		for _, ph := range interp.Progs {
			if ph.Type == elf.PT_INTERP {
				return nil, bad("its interpreter %s has an interpreter itself", p.interp)
			}
		}
	}
	name := filepath.Base(path)
	if len(name) > 50 {
		name = name[:50]
	}
	p.owner = "client " + name
	p.mmapOwner = fmt.Sprintf("client %s mmap %d", name, programSerial.Add(1))
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
	exe, err := mapImage(v, path, x, p.owner)
	if err != nil {
		return nil, err
	}
	p.bias, p.lo, p.hi = exe.bias, exe.lo, exe.hi
	if f.Type == elf.ET_DYN && dyn != nil && p.interp == "" && !selfRelocating {
		if err := p.relocate(dyn); err != nil {
			return nil, bad("%v", err)
		}
	}
	if err := exe.protect(v, path); err != nil {
		return nil, err
	}
	p.entry = p.bias + uintptr(f.Entry)
	p.phdr = phdrAddr(x, p.bias)
	p.phnum = len(f.Progs)
	p.runAt = p.entry
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
	if interp != nil {
		// The kernel maps the interpreter after the program and its
		// break, where mmap would place it; here it goes where a PIE
		// goes, within reach of vmcode.
		ld, err := mapImage(v, p.interp, ix, p.owner+" interp")
		if err != nil {
			return nil, err
		}
		p.interpLo, p.interpHi, p.interpBias = ld.lo, ld.hi, ld.bias
		if err := ld.protect(v, p.interp); err != nil {
			return nil, err
		}
		p.runAt = ld.bias + uintptr(interp.Entry)
	}
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
		p.gdb = gdbRegister(programObject(x.data, f, p.bias))
	}
	m.programs[p] = struct{}{}
	ok = true
	return p, nil
}

// ResolveProgram returns what the kernel's execve would load for path
// run with argv: path itself for an x86-64 ELF executable, or for a
// script (#!) its interpreter (through up to four levels of scripts, as
// binfmt_script reads them), with argv rewritten as the kernel rewrites
// it (the interpreter, its optional argument, the script's path, then
// argv[1:]). It fails with the kernel's errno for a script whose
// interpreter is missing, not executable or too deep, and with
// unix.ENOEXEC for a file that is neither.
func ResolveProgram(path string, argv []string) (string, []string, error) {
	req, e := resolveExec(path, argv)
	switch {
	case e != 0:
		return "", nil, fmt.Errorf("jit: %s: %w", path, e)
	case req == nil:
		return "", nil, fmt.Errorf("jit: %s: %w", path, unix.ENOEXEC)
	}
	return req.Path, req.Argv, nil
}

// parseExecutable parses r as an x86-64 ELF64 executable or shared
// object.
func parseExecutable(r io.ReaderAt) (*elf.File, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, errors.New("not an x86-64 ELF64 executable")
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("not an executable (%v)", f.Type)
	}
	return f, nil
}

// exePath returns what /proc/self/exe would say for the program at path:
// its absolute path with every symbolic link resolved (path itself if
// that fails, as it then cannot have been loaded).
func exePath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// An image is an ELF file's PT_LOAD segments mapped by mapImage,
// committed read-write and filled, waiting for protect to give each page
// its segment's protection.
type image struct {
	// bias is the load bias (0 for ET_EXEC), [lo, hi) the image's
	// reservation.
	bias, lo, hi uintptr
	// segs are the loaded segments' pages and protections, in the
	// file's order (a page shared by two segments gets both's).
	segs []imageSeg
}

// imageSeg is a loaded segment's pages [a, b) and protection.
type imageSeg struct {
	a, b uintptr
	prot mem.Prot
}

// mapImage reserves the span of x's PT_LOAD segments in application
// memory annotated owner (at their addresses for ET_EXEC, at the first
// free one of pieBases, else where the OS chooses, for ET_DYN) and fills
// each segment read-write (loadSegment: mapped from the file where the
// segments allow, as the kernel maps them, else read into committed
// memory). On error the image is released again.
func mapImage(v *vmm.VMM, path string, x *execFile, owner string) (_ image, err error) {
	f := x.elf
	bad := func(format string, args ...any) error {
		return &ProgramError{Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	page := uintptr(mem.PageSize)
	lo, hi := ^uintptr(0), uintptr(0)
	for _, ph := range f.Progs {
		if ph.Type != elf.PT_LOAD {
			continue
		}
		if ph.Filesz > ph.Memsz || ph.Off+ph.Filesz > uint64(x.size) || ph.Off+ph.Filesz < ph.Off {
			return image{}, bad("a PT_LOAD beyond the file")
		}
		end, ok := mem.AlignUp(ph.Vaddr+ph.Memsz, uint64(page))
		if ph.Vaddr+ph.Memsz < ph.Vaddr || !ok {
			return image{}, bad("a PT_LOAD past the end of the address space")
		}
		lo = min(lo, mem.AlignDown(uintptr(ph.Vaddr), page))
		hi = max(hi, uintptr(end))
	}
	if hi == 0 {
		return image{}, bad("no PT_LOAD")
	}
	// The image's span, reserved in one piece.
	span := hi - lo
	var r mem.Range
	if f.Type == elf.ET_EXEC {
		if r, err = v.ReserveApp(lo, span, mem.Exact, owner); err != nil {
			if errors.Is(err, mem.ErrExists) {
				return image{}, bad("its addresses [%#x, %#x) are taken (%s): run reachvm built with -buildmode=pie, or link the program elsewhere (-Wl,-Ttext-segment)", lo, hi, whatIsAt(v, lo, hi))
			}
			return image{}, fmt.Errorf("jit: %s: reserving the image: %w", path, err)
		}
	} else {
		err = mem.ErrExists
		for _, b := range pieBases {
			if !inReachOfVMCode(v, b, span) {
				continue
			}
			if r, err = v.ReserveApp(b, span, mem.Exact, owner); err == nil {
				break
			}
		}
		if err != nil {
			// vmcode is elsewhere (its base was taken): as near it
			// as there is room.
			if at := nearVMCode(v, span); at != 0 {
				r, err = v.ReserveApp(at, span, mem.Exact, owner)
			}
		}
		if err != nil {
			if r, err = v.ReserveApp(0, span, mem.Hint, owner); err != nil {
				return image{}, fmt.Errorf("jit: %s: reserving the image: %w", path, err)
			}
		}
	}
	img := image{bias: r.Start - lo, lo: r.Start, hi: r.End}
	defer func() {
		if err != nil {
			if rerr := v.ReleaseApp(r); rerr != nil {
				err = errors.Join(err, fmt.Errorf("jit: %s: releasing the image: %w", path, rerr))
			}
		}
	}()
	var obj mem.Object
	if mappable(f) {
		obj = x.object(v)
	}
	for _, ph := range f.Progs {
		if ph.Type != elf.PT_LOAD {
			continue
		}
		// The first pass checked that every segment's end aligns up
		// without overflow, and the bias is page aligned.
		end, _ := mem.AlignUp(uintptr(ph.Vaddr+ph.Memsz), page)
		a, b := img.bias+mem.AlignDown(uintptr(ph.Vaddr), page), img.bias+end
		if err := loadSegment(v, x, obj, ph, img.bias, a, b, owner); err != nil {
			return image{}, fmt.Errorf("jit: %s: %w", path, err)
		}
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
		img.segs = append(img.segs, imageSeg{a, b, prot})
	}
	return img, nil
}

// protect gives the image's pages their segments' protection, one
// protect per run of loaded pages with the same protection; the gaps
// between segments stay reserved, inaccessible.
func (img *image) protect(v *vmm.VMM, path string) error {
	// Between two consecutive ends of segments every page has the same
	// protection: the union of the segments covering it, or none
	// loaded.
	cuts := make([]uintptr, 0, 2*len(img.segs))
	for _, s := range img.segs {
		cuts = append(cuts, s.a, s.b)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var run mem.Range
	var runProt mem.Prot
	flush := func() error {
		if run.Empty() {
			return nil
		}
		if err := v.ProtectApp(run, runProt); err != nil {
			return fmt.Errorf("jit: %s: %w", path, err)
		}
		run = mem.Range{}
		return nil
	}
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i], cuts[i+1]
		prot, loaded := mem.ProtNone, false
		for _, s := range img.segs {
			if s.a < hi && lo < s.b {
				prot |= s.prot
				loaded = true
			}
		}
		if loaded && !run.Empty() && run.End == lo && runProt == prot {
			run.End = hi
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if loaded {
			run, runProt = mem.Range{Start: lo, End: hi}, prot
		}
	}
	return flush()
}

// phdrAddr returns where x's program headers are once loaded at bias:
// PT_PHDR's address, or else within the PT_LOAD that maps the file's
// start; 0 if neither exists.
func phdrAddr(x *execFile, bias uintptr) uintptr {
	for _, ph := range x.elf.Progs {
		if ph.Type == elf.PT_PHDR {
			return bias + uintptr(ph.Vaddr)
		}
	}
	for _, ph := range x.elf.Progs {
		if ph.Type == elf.PT_LOAD && ph.Off == 0 {
			return bias + uintptr(ph.Vaddr) + uintptr(x.phoff)
		}
	}
	return 0
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

// Run runs the program from its interpreter's entry point (or its own,
// for a static program) with argv, envp and the auxiliary vector on its
// stack as execve lays them out (auxv_linux_amd64.go), and returns its
// exit status once every thread it started is gone: exit_group's, or the
// last exit's. It returns an error instead for anything the translator
// refuses, in any thread: an unsupported instruction or system call
// (another program), a jump to non-code; a *SignalError when a signal's
// default action ends the program. The program's input and output are
// the process's own file descriptors.
//
// Run on the process's main thread (runtime.LockOSThread in an init
// function holds the main goroutine there), the program's first thread is
// the one the kernel offers the process's signals first, and takes them
// at once; on another thread they come through whichever thread the
// kernel picked, as soon as that thread is scheduled.
func (p *Program) Run(argv, envp []string) (int, error) {
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || p.closed {
		return 0, fmt.Errorf("jit: running %s: %w", p.path, ErrClosed)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t, err := p.start(argv, envp)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	defer p.closeIdle()
	m.clientThreadStart(t.tid)
	done, err := m.runningOn(sigtramp.AllCatchable())
	if err != nil {
		m.clientThreadExit()
		t.gone(t.finish(err))
		return p.ended(p.wait())
	}
	_, err = m.dispatch(p.runAt)
	done()
	if err == nil {
		err = fmt.Errorf("jit: %s returned from its entry point", p.path)
	}
	m.clientThreadExit()
	t.gone(t.finish(err))
	return p.ended(p.wait())
}

// ended gives the client the end of the run, with Run's results.
func (p *Program) ended(status int, err error) (int, error) {
	if c := p.m.opts.Client; c != nil && c.Exit != nil {
		c.Exit(&ExitEvent{Status: status, Err: err})
	}
	return status, err
}

// start sets up a run: the stack with argv and envp, the registers, flags
// and vector state at the entry point, a new process's signal state, and
// its first thread, run by the program's machine, which it returns.
//
// Preconditions: p.m.mu is held, the OS thread locked.
func (p *Program) start(argv, envp []string) (*thread, error) {
	m := p.m
	sp, err := p.buildStack(argv, envp)
	if err != nil {
		return nil, err
	}
	clear(m.mem[ctxGPR : ctxGPR+16*8])
	m.setReg(amd64.RSP, uint64(sp))
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], initialFlags)
	resetVectorState(m.mem[ctxXsave : ctxXsave+m.lay.xsaveSize])
	// A new process's FS base is 0: reading %fs before the program sets
	// it faults, as natively.
	m.setAppFS(0)
	m.setHostFS(m.hostFS())
	fds, err := hostFDs()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.hostFDs = fds
	p.mu.Unlock()
	t := &thread{p: p, m: m}
	p.resetSignals(t)
	p.resetProc()
	m.cs.join(m, t)
	return t, nil
}

// stop ends what start set up: the program's machine is idle in its
// address space again.
func (p *Program) stop() {
	p.endSignals()
	p.m.setAppFS(0)
	p.m.setHostFS(0)
	p.m.cs.join(p.m, nil)
}

// buildStack lays out argc, argv, envp and the auxiliary vector at the top
// of the stack, as the kernel does for a new process, and returns the
// stack pointer (at argc, 16-byte aligned).
func (p *Program) buildStack(argv, envp []string) (uintptr, error) {
	// Code a previous run made of its stack is written over.
	p.m.willWrite(mem.Range{Start: p.stack, End: p.stack + p.stackSize})
	top := p.stack + p.stackSize
	// The kernel refuses (E2BIG) arguments and environment over a
	// quarter of the stack limit.
	size := len(p.path) + 1
	for _, s := range append(append([]string(nil), argv...), envp...) {
		size += len(s) + 1
	}
	if size > int(p.stackSize/4) {
		return 0, fmt.Errorf("jit: %s: arguments and environment (%d bytes) do not fit the stack", p.path, size)
	}
	mem := rawmem.Bytes(p.stack, p.stackSize)
	// A NULL pointer's worth at the very top, then the strings as
	// the kernel copies them: the file name highest, below it argv's
	// and envp's strings one after another, argv[0] lowest.
	pos := p.stackSize - 8
	clear(mem[pos:])
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
	envpp = make([]uintptr, len(envp))
	for i := len(envp) - 1; i >= 0; i-- {
		envpp[i] = putString(envp[i])
	}
	argp = make([]uintptr, len(argv))
	for i := len(argv) - 1; i >= 0; i-- {
		argp[i] = putString(argv[i])
	}
	var as auxStrings
	as.execfn = execfn
	platform, ok := hostString(atPlatform)
	if !ok {
		platform = "x86_64"
	}
	as.platform = putString(platform)
	if bp, ok := hostString(atBasePlatform); ok {
		as.basePlatform = putString(bp)
	}
	pos -= 16
	as.random = p.stack + pos
	if _, err := getrandom(mem[pos : pos+16]); err != nil {
		for i := range 16 {
			mem[pos+uintptr(i)] = byte(i * 37)
		}
	}
	aux := p.auxv(as)
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
	release(p.interpLo, p.interpHi-p.interpLo)
	release(p.brkBase, p.brkMax-p.brkBase)
	release(p.stack-p.stackGuard, p.stackGuard+p.stackSize)
	p.lo, p.hi, p.brkBase, p.brkMax, p.stack, p.stackSize, p.stackGuard = 0, 0, 0, 0, 0, 0, 0
	p.interpLo, p.interpHi = 0, 0
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
// its interpreter's, its brk area or stack.
func (p *Program) clientOwned(a, n uintptr) bool {
	over := func(lo, hi uintptr) bool { return hi > lo && a < hi && lo < a+n }
	return over(p.lo, p.hi) || over(p.interpLo, p.interpHi) || over(p.brkBase, p.brkMax) || over(p.stack-p.stackGuard, p.stack+p.stackSize)
}
