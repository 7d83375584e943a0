package jit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/cfi"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// Options tunes a Machine. The zero value selects the defaults.
type Options struct {
	// StackSize is the application stack's size (default 8 MiB, as a
	// Linux main thread's).
	StackSize uintptr
	// UnitSize is the size of each code-cache unit (default 1 MiB).
	UnitSize uintptr
	// MaxCacheSize caps the code cache; when a fragment does not fit,
	// the whole cache is flushed and translation starts over (QEMU's
	// policy). Default 64 MiB; at least one unit.
	MaxCacheSize uintptr
	// MaxBlockInstrs caps a fragment's length in application
	// instructions (default 256).
	MaxBlockInstrs int
	// MaxBlocks caps the basic blocks of a fragment, which goes on
	// through conditional branches' fall-through, direct jumps and
	// direct calls (default 8; 1 makes every fragment a basic block).
	MaxBlocks int
	// Align is the alignment of fragment bodies (default 16, a power of
	// two), where direct links and inline-cache hits enter: loop heads
	// in the cache then sit as the compiler aligned them.
	Align uintptr
	// InlineCache is the number of targets each return and indirect
	// jump site learns and then jumps to directly (default 2, at most
	// 4; -1 for none: every indirect branch takes the table).
	InlineCache int
	// CallInlineCache is the same for indirect calls (default 6, at
	// most 8 where the site compares in place (code below 2 GiB), 4
	// elsewhere): a call through a table of functions resolves a
	// compare on the pointer as soon as it is loaded, sooner than a
	// table lookup's indirect jump.
	CallInlineCache int
	// PerfMap appends a line per fragment to /tmp/perf-<pid>.map
	// ("START SIZE name", QEMU's -perfmap), so that perf report names
	// translated code by the application code it came from:
	// "reachvm:libz.so.1+0x33b0" for a fragment of libz at that offset.
	// Lines of flushed fragments stay (the file is append-only, as
	// QEMU's). A fragment that holds code of several functions (a
	// superblock goes on through calls and returns) has a line for each
	// function's part: "reachvm:nested!f3+0x0".
	PerfMap bool
	// JitDump writes perf's jitdump (jit-<pid>.dump in $JITDUMPDIR, or
	// in /tmp): a record with the code, address and name of each piece
	// of each fragment, named as in the perf map, so that `perf inject
	// --jit` turns a `perf record -k 1` profile into one perf report and
	// perf annotate show as the application's functions. The file is
	// mapped once, executable, as perf requires to find it.
	JitDump bool
	// GDB registers, with gdb's JIT interface, an in-memory ELF object
	// for each program LoadProgram loads (its own symbols, call frame
	// and debugging information) and one for each fragment (a function
	// symbol per piece, named after the application function, and the
	// application's call frame information moved onto the translated
	// instructions), so that gdb names and unwinds frames in the code
	// cache and in the application.
	GDB bool
	// StrictFlags makes the translator keep the arithmetic flags
	// exactly even across calls and returns. By default it takes the
	// psABI at its word, which gives the flags no role across a call:
	// returns and calls compare their targets with cmp and save no
	// flags, so a callee starts, and a caller goes on after a return,
	// with the flags of that compare. Code that passes flags between
	// functions (hand-written assembly outside the ABI) needs
	// StrictFlags; it costs a pushfq at every return and call site and
	// a popfq where a target reads the flags. Exactly means every flag
	// the ISA defines: an instruction that leaves a flag undefined (imul
	// SF ZF AF PF, a shift's AF) counts as writing it, so the flags may
	// be changed before it, and code that reads such a flag may see
	// another value than natively on a CPU that keeps it (an AMD EPYC
	// of family 1Ah keeps imul's).
	StrictFlags bool
	// Exec, when set, makes reachvm follow a program's execve of an
	// x86-64 ELF executable (or of a script whose interpreter is one):
	// given the new program, it returns the process image to execute
	// in its place, one that runs req's program under reachvm and
	// gives it req's signal state (Program.Inherit). Without it, or for
	// any other file, execve goes to the kernel and the new program
	// runs natively, with the program's mask and ignored signals. It
	// is called on the program's thread, which it must not leave.
	Exec func(req *ExecRequest) (path string, argv, envp []string)
	// Client, when set, is the instrumentation tool the translator
	// runs (client_linux_amd64.go); nil costs nothing.
	Client *Client
	// NoJumpTables translates every indirect jump as an inline-cache
	// site, even one through a read-only jump table of known range,
	// which is otherwise translated into a table of cache addresses
	// (jumptable_linux_amd64.go): the baseline that translation is
	// measured against.
	NoJumpTables bool
	// NoSlotBranches translates every indirect jump or call through a
	// RIP-relative slot (a PLT's jump) as an inline-cache site, where a
	// superblock otherwise goes on into the slot's target behind a
	// guard (slotjump_linux_amd64.go): the baseline that translation is
	// measured against.
	NoSlotBranches bool
	// NoVDSO starts a program without the vDSO (no AT_SYSINFO_EHDR in
	// its auxiliary vector), so that its libc makes clock_gettime,
	// gettimeofday, time and getcpu as system calls. By default the
	// program gets reachvm's own vDSO and its code is translated as
	// the program's is.
	NoVDSO bool
}

func (o *Options) setDefaults() {
	if o.StackSize == 0 {
		o.StackSize = 8 << 20
	}
	if o.UnitSize == 0 {
		o.UnitSize = 1 << 20
	}
	if o.MaxCacheSize == 0 {
		o.MaxCacheSize = 64 << 20
	}
	if o.MaxCacheSize < o.UnitSize {
		o.MaxCacheSize = o.UnitSize
	}
	if o.MaxBlockInstrs == 0 {
		o.MaxBlockInstrs = 256
	}
	if o.MaxBlocks <= 0 {
		o.MaxBlocks = 8
	}
	if o.Align == 0 {
		o.Align = 16
	}
	o.InlineCache = slotsOption(o.InlineCache, 2, maxRCXSlots)
	o.CallInlineCache = slotsOption(o.CallInlineCache, 6, maxInlineCache)
}

// slotsOption reads an inline-cache size option: 0 selects def, a
// negative value none, and more than max is max.
func slotsOption(n, def, max int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return min(n, max)
}

// Stats counts what a Machine did.
type Stats struct {
	// Fragments is the number of fragments translated, Blocks the
	// basic blocks in them, Instrs the application instructions.
	Fragments, Blocks, Instrs int
	// Exits counts returns to the dispatcher (each costs a context
	// switch), IBLMisses those of them from an indirect-branch lookup.
	Exits, IBLMisses int
	// Links counts exits patched to go straight to their target.
	Links int
	// Polymorphic counts indirect-branch sites that stopped using their
	// inline cache.
	Polymorphic int
	// JumpTables counts indirect jumps translated through a table of
	// translated code (jumptable_linux_amd64.go).
	JumpTables int
	// Flushes counts full-cache flushes.
	Flushes int
	// Invalidated counts fragments deleted one by one because the
	// memory they were read from changed (unmapped, reprotected,
	// written), CodeWrites the writes to write-protected code pages
	// that caused some (write faults, system calls writing there, and
	// RunNative, which unprotects them all), WriteProtects the pages
	// reachvm write-protected because code was translated from them.
	Invalidated, CodeWrites, WriteProtects int
	// Mangled counts RIP-relative operands out of rel32 reach of the
	// cache, rewritten through a scratch register.
	Mangled int
	// SlotBranches counts indirect branches through a slot (a PLT's
	// jump, a call through a function pointer) that a superblock went
	// on through, behind a guard that the slot still held its target.
	SlotBranches int
	// Syscalls counts system calls performed for the application.
	Syscalls int
	// Forks counts the processes the application created (fork,
	// vfork, clone of a process), each child detached to native
	// execution.
	Forks int
	// Signals counts the signals the signal layer took out of the code
	// cache; Steps the single steps taken to bring an asynchronous one
	// from code the translator inserted to a point where the
	// application's state is exact.
	Signals, Steps int
	// CacheBytes is the code cache's size in use.
	CacheBytes uintptr
	// Threads counts the application threads the machine's programs
	// started (clone) and that have ended; the counts above include
	// what their machines did.
	Threads int
}

// add adds o's counts to s.
func (s *Stats) add(o *Stats) {
	s.Fragments += o.Fragments
	s.Blocks += o.Blocks
	s.Instrs += o.Instrs
	s.Exits += o.Exits
	s.IBLMisses += o.IBLMisses
	s.Links += o.Links
	s.Polymorphic += o.Polymorphic
	s.JumpTables += o.JumpTables
	s.Flushes += o.Flushes
	s.Invalidated += o.Invalidated
	s.CodeWrites += o.CodeWrites
	s.WriteProtects += o.WriteProtects
	s.Mangled += o.Mangled
	s.SlotBranches += o.SlotBranches
	s.Syscalls += o.Syscalls
	s.Signals += o.Signals
	s.Steps += o.Steps
	s.Forks += o.Forks
	s.Threads += o.Threads
}

// Machine runs application code under the translator: a code cache in
// vmcode, the routines that switch into and out of it, a machine context
// and an application stack. It runs one application thread at a time:
// Run calls are serialized.
//
// A Machine is a dependent of its VMM (vmm.StageRun) and of its
// vmcode.Code: closing either closes the machine first, and waits for a
// Run in progress to return (which an application that never returns
// makes it wait for forever). Once closed, Run, RunNative, LoadProgram
// and Close fail with an error wrapping ErrClosed (and so vmm.ErrClosed),
// Flush does nothing and Stats reports the counts at Close.
type Machine struct {
	// mu serializes runs, translation and Close. Lock order: mu, then
	// the vmcode.Code's and the VMM's locks.
	mu   sync.Mutex
	v    *vmm.VMM
	code *vmcode.Code
	opts Options
	vs   vectorState
	lay  layout
	// fs is how the routines switch FS between the application's and
	// Go's (fs_linux_amd64.go).
	fs fsSwitch

	// data is the read-write vmcode slot holding the context (at ctx)
	// and the indirect-branch table.
	data *vmm.Slot
	ctx  uintptr
	mem  []byte
	// gen holds the emitted routines, which survive flushes.
	genUnit *codeUnit
	gen     gencode
	// gateRegion is the signal layer's entry for the gate's window
	// (gencode.gate), -1 when none.
	gateRegion int
	// units is the code cache; cur the unit being filled.
	units []*codeUnit
	cur   int
	// frags maps application addresses to fragments; exits holds the
	// exits by number, bad the explanation of those of kind exitBad.
	frags map[uintptr]*fragment
	exits exitTable
	bad   map[int]badInstr
	// heapFrom and heapTo bound the stretch of the Go heap populated
	// ahead of the translator's records (populateHeapAhead): empty
	// until the first translation. Guarded as the other translation
	// state (only the machine's thread, or mu, touches them).
	heapFrom, heapTo uintptr
	// epoch counts flushes, so that a link decided before a flush is
	// dropped.
	epoch int
	// pages indexes the application pages live fragments were read
	// from (smc_linux_amd64.go): a page is in it while some live
	// fragment was read from it, or while its protection, which reachvm
	// took PROT_WRITE from, could not be given back.
	pages codeIndex
	// wpPages counts the pages in pages whose write protection the
	// machine uses (codePage.wp set).
	wpPages int
	// deadExits counts the exits of deleted fragments, which stay in
	// exits (numbered in their code) until a flush.
	deadExits int
	// protectWrites makes translation write-protect the writable
	// application pages it reads (the default); off, writes to
	// translated code go unseen (BenchmarkCodeWrites' baseline).
	protectWrites bool
	// oneShot makes the next fragment asked for transient (set by
	// codeWritten): one instruction, in no table, reading no page into
	// the index, run once.
	oneShot bool
	// wholeFlush makes a change to translated code flush the whole
	// cache instead of deleting the fragments read from the pages it
	// touched: the alternative BenchmarkCodeWrites measures.
	wholeFlush bool

	stack, stackSize uintptr
	// sentinel is the return address Run gives the function: an address
	// that is never code (the context's), so the return misses the
	// lookup and comes back to the dispatcher.
	sentinel uintptr

	t translator
	// codes is the code map, cs's.
	codes  *codeMap
	stats  Stats
	closed bool
	// untrackVMM and untrackCode remove the machine from its VMM's and
	// its Code's dependents. Set by NewMachine; Close calls them.
	untrackVMM, untrackCode func()
	// programs are the programs loaded and not closed: Close closes
	// them first.
	programs map[*Program]struct{}
	// perf is the perf map, with PerfMap.
	perf *os.File
	// libs are the files holding code the machine translated, read for
	// naming it, by path and first mapping; filled only with
	// Options.views.
	libs map[libKey]*module
	// piecesBuf is reused by pieces.
	piecesBuf []piece
	// marker is the jitdump's executable mapping (JitDump), in vmcode,
	// if this machine made it.
	marker *vmm.Slot
	// gdbFrags are the gdb JIT entries of the fragments in the cache
	// (GDB), unregistered when a flush drops the fragments.
	gdbFrags []*gdbEntry
	// gdbRows is gdbFragment's scratch space.
	gdbRows []cfi.At
	// cs is the address space the machine runs in, shared with the
	// machines of its program's other threads (codespace_linux_amd64.go).
	// Immutable after NewMachine.
	cs *codeSpace
	// th is the application thread the machine runs (a Program's), nil
	// for Machine.Run. Written under cs.mu (codeSpace.join and leave);
	// read by the goroutine running the machine without it, by others
	// under it.
	th *thread
	// inbox holds the changes to code other members of cs told the
	// machine of.
	inbox inbox
	// work holds workInval and workExit, set by other goroutines: the
	// dispatcher tests it before every fragment it enters.
	work atomic.Uint32
	// entered is set while the thread runs translated code, or is about
	// to: a change to code another thread makes then kicks it out.
	entered atomic.Bool
	// enterGen is cs.gen when the thread last entered the cache.
	enterGen uint64
	// arrived counts the signals drainArrivals took from the signal
	// layer (kicks included): a system call that fails with EINTR while
	// it grows was interrupted by one.
	arrived uint64
	// stepping is set while the dispatcher single-steps the application
	// to a point where a signal can be delivered.
	stepping bool
	// markChunks are where fragments' packed marks are kept, a chunk
	// at a time (keepMarks), so that a fragment's translation costs no
	// allocation of its own for them; markChunk is the one being
	// filled. A flush drops every fragment and starts again from the
	// first chunk, reusing them all. packBuf is keepMarks' scratch,
	// viewMarks show's: the marks of the fragment being shown.
	markChunks [][]byte
	markChunk  int
	packBuf    []byte
	viewMarks  []mark
	// visitsUsed is the number of visit counters sites took since the
	// last flush (learn_linux_amd64.go); learnNow gives sites none, so
	// that each learns at its first visit (BenchmarkColdSites'
	// baseline).
	visitsUsed int
	learnNow   bool
	// waiting holds, by application address, the translated jump tables
	// with entries for it that wait for its fragment.
	waiting map[uintptr][]*jumpTable
	// forkBlk is the fork block (fork_linux_amd64.go) in vmheap,
	// forkBlkSize bytes, allocated at the application's first fork;
	// 0 before.
	forkBlk, forkBlkSize uintptr
	// ccStack is the base of the machine's clean-call stack
	// (ccStackSize bytes of vmheap), allocated when a client first
	// inserts a clean call; 0 before.
	ccStack uintptr
	// cmodLo and cmodHi are the code range around the last block a
	// client was told the module of (clientModule): blocks in it need
	// no look.
	cmodLo, cmodHi uintptr
	// wraps are the thread's calls of wrapped functions that have not
	// returned, innermost last.
	wraps []*WrapCall
	// traces are the machine's trace buffers (nil until a client
	// records into one).
	traces *traceArena
	// cells are the cells of the PerThread counters the client's code
	// in this cache updates (counter_linux_amd64.go), nil until the
	// first; cthread is the client's view of the thread the machine
	// runs, nil until the client first sees it.
	cells   *cellArena
	cthread *Thread
}

// NewMachine returns a Machine whose cache, context and emitted routines
// live in code's vmcode and whose stack comes from the same VMM's vmheap.
func NewMachine(code *vmcode.Code, opts *Options) (*Machine, error) {
	return newMachine(code, opts, nil)
}

// newMachine is NewMachine, or with parent, a machine for another thread
// of parent's program: in parent's address space (its codeSpace and code
// map), with parent's options, and no stack of its own (a program's
// threads run on stacks in its memory).
func newMachine(code *vmcode.Code, opts *Options, parent *Machine) (*Machine, error) {
	m := &Machine{code: code, v: code.VMM(), programs: make(map[*Program]struct{}), protectWrites: true, gateRegion: -1}
	if parent != nil {
		m.cs, m.codes = parent.cs, parent.codes
		m.protectWrites, m.wholeFlush = parent.protectWrites, parent.wholeFlush
	} else {
		m.codes = &codeMap{v: m.v}
		m.cs = newCodeSpace(m)
	}
	if opts != nil {
		m.opts = *opts
	}
	m.opts.setDefaults()
	if m.opts.Align&(m.opts.Align-1) != 0 || m.opts.Align > 64 {
		return nil, fmt.Errorf("jit: alignment %d is not a power of two up to 64", m.opts.Align)
	}
	stackSize, fits := mem.AlignUp(m.opts.StackSize, mem.PageSize)
	if !fits {
		return nil, fmt.Errorf("jit: stack size %#x overflows when rounded up to the page", m.opts.StackSize)
	}
	m.stackSize = stackSize
	m.vs = detectVectorState()
	m.fs = defaultFSSwitch()
	if parent != nil {
		// The program's threads switch FS, or translate its operands,
		// as its first one does.
		m.fs = parent.fs
	}
	m.lay = newLayout(m.vs)
	// Tracked before anything is reserved, and held until made: a VMM
	// or Code Close that starts meanwhile waits for NewMachine (whose
	// reservations it refuses) instead of releasing memory it writes.
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	if m.untrackVMM, err = m.v.Track(vmm.StageRun, "jit machine", m.Close); err != nil {
		return nil, fmt.Errorf("jit: %w", err)
	}
	if m.untrackCode, err = code.Track("jit machine", m.Close); err != nil {
		m.untrackVMM()
		return nil, fmt.Errorf("jit: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = m.free()
			m.closed = true
			m.untrack()
		}
	}()
	s, err := m.v.ReserveSlot(m.lay.size, "jit context")
	if err != nil {
		return nil, fmt.Errorf("jit: reserving the machine context: %w", err)
	}
	m.data = s
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRW); err != nil {
		return nil, fmt.Errorf("jit: committing the machine context: %w", err)
	}
	m.ctx = s.Base()
	m.mem = rawmem.Bytes(m.ctx, m.lay.size)
	// The context's pages are all touched soon, the tables' as targets
	// fill them: populating them costs less than their faults (a
	// program's first machine), or than the memory of a table few of
	// whose entries a thread fills (another thread's machine). The
	// sites' visit counters are touched as sites are made, which a
	// short run makes few of.
	pop := m.lay.visits
	if parent != nil {
		pop = m.lay.ibl
	}
	_ = s.Populate(s.Base(), pop, vmm.ViewOwn)
	m.sentinel = m.ctx
	// The table is committed zero: empty but for its first entry.
	m.emptyIBL(0)

	if m.genUnit, err = allocUnit(code, 4096); err != nil {
		return nil, fmt.Errorf("jit: allocating the routines' unit: %w", err)
	}
	a := amd64.NewAssembler(m.genUnit.exec)
	if m.gen, err = emitGencode(a, m.ctx, m.lay, m.vs, m.fs); err != nil {
		return nil, err
	}
	m.genUnit.write(m.genUnit.exec, a.Bytes())
	m.genUnit.used = uintptr(a.Len())
	if err := m.initSignals(); err != nil {
		return nil, err
	}

	if parent == nil {
		if m.stack, err = m.v.HeapAlloc(m.stackSize); err != nil {
			return nil, fmt.Errorf("jit: allocating the application stack: %w", err)
		}
	}
	m.frags = make(map[uintptr]*fragment)
	m.exits.reset()
	m.t = translator{m: m, a: amd64.NewAssembler(0)}
	ok = true
	return m, nil
}

// free releases whatever NewMachine or Close has not released yet.
func (m *Machine) free() error {
	var errs []error
	for _, u := range m.units {
		errs = append(errs, u.free())
	}
	m.units = nil
	if m.gateRegion >= 0 {
		sigtramp.Unregister(m.gateRegion)
		m.gateRegion = -1
	}
	if m.genUnit != nil {
		errs = append(errs, m.genUnit.free())
		m.genUnit = nil
	}
	errs = append(errs, m.cells.release())
	m.cells = nil
	if m.cs != nil && m.cs.owner == m {
		errs = append(errs, m.cs.releaseCells())
	}
	if m.data != nil {
		errs = append(errs, m.data.Release())
		m.data = nil
	}
	if m.stack != 0 {
		errs = append(errs, m.v.HeapFree(m.stack, m.stackSize))
		m.stack = 0
	}
	errs = append(errs, m.traces.release())
	m.traces = nil
	if m.ccStack != 0 {
		errs = append(errs, m.v.HeapFree(m.ccStack, ccStackSize))
		m.ccStack = 0
	}
	if m.forkBlk != 0 {
		errs = append(errs, m.v.HeapFree(m.forkBlk, m.forkBlkSize))
		m.forkBlk = 0
	}
	if m.perf != nil {
		disownFD(int(m.perf.Fd()))
		errs = append(errs, m.perf.Close())
		m.perf = nil
	}
	m.gdbDrop()
	if m.marker != nil {
		errs = append(errs, m.marker.Release())
		m.marker = nil
	}
	return errors.Join(errs...)
}

// ErrClosed is wrapped by the errors of a closed Machine's and Program's
// methods; errors.Is(err, vmm.ErrClosed) holds for it too.
var ErrClosed = fmt.Errorf("jit: %w", vmm.ErrClosed)

// untrack removes m from its VMM's and Code's dependents.
func (m *Machine) untrack() {
	if m.untrackVMM != nil {
		m.untrackVMM()
	}
	if m.untrackCode != nil {
		m.untrackCode()
	}
}

// Close closes the programs loaded into the machine, then releases its
// cache, context and stack. It waits for a Run in progress. A second
// Close fails with an error wrapping ErrClosed.
func (m *Machine) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("jit: closing the machine: %w", ErrClosed)
	}
	m.closed = true
	errs := []error{m.unprotectAll()}
	for p := range m.programs {
		p.closed = true
		errs = append(errs, p.free())
	}
	m.programs = nil
	errs = append(errs, m.free())
	m.untrack()
	return errors.Join(errs...)
}

// Stats returns the machine's counters, with those of the threads its
// programs started that have ended.
func (m *Machine) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	for _, u := range m.units {
		s.CacheBytes += u.used
	}
	for p := range m.programs {
		p.mu.Lock()
		s.add(&p.threadStats)
		p.mu.Unlock()
	}
	return s
}

// Flush drops every translation, and gives the pages write-protected for
// them their protection back. Changes to code in application memory, and
// the memory calls the application makes, drop the translations they
// invalidate by themselves (smc_linux_amd64.go); Flush is for changes the
// machine cannot see: code outside application memory written by the
// embedder or by code run in library mode, or written through another
// mapping of the same memory. After Close it does nothing: there is
// nothing left to drop.
func (m *Machine) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.flush()
}

// flush drops every translation, and gives the pages reachvm
// write-protected their protection back.
func (m *Machine) flush() {
	for _, u := range m.units {
		u.used = 0
		clear(u.frags)
		u.frags = u.frags[:0]
	}
	m.cur = 0
	m.markChunk = 0
	if len(m.markChunks) > 0 {
		m.markChunks[0] = m.markChunks[0][:0]
	}
	for _, f := range m.frags {
		f.dead = true
	}
	clear(m.frags)
	for _, e := range m.pages.in(mem.Range{Start: m.pages.lo, End: m.pages.hi}) {
		e.live = 0
		m.release(e)
	}
	m.exits.reset()
	clear(m.bad)
	m.deadExits = 0
	m.clearIBL()
	m.clearVisits()
	clear(m.waiting)
	m.epoch++
	m.stats.Flushes++
	m.gdbDrop()
}

// clearIBL empties the indirect-branch table. An empty entry is zero
// (its tag 0 matches only the target 0, whose index is 0), except entry
// 0, which holds the tag 1; so a fresh table, committed zero, needs only
// its first entry written, and its pages are touched as targets fill
// them.
func (m *Machine) clearIBL() {
	clear(m.mem[m.lay.ibl : m.lay.ibl+16*iblEntries])
	m.emptyIBL(0)
}

// emptyIBL empties entry k of the indirect-branch table (see clearIBL).
func (m *Machine) emptyIBL(k uintptr) {
	var tag uint64
	if k == 0 {
		tag = ^uint64(0) // -1: the tag 1
	}
	binary.LittleEndian.PutUint64(m.mem[m.lay.ibl+16*k:], tag)
	binary.LittleEndian.PutUint64(m.mem[m.lay.ibl+16*k+8:], 0)
}

// setIBL enters target -> entry into the indirect-branch table.
func (m *Machine) setIBL(target, entry uintptr) {
	k := uintptr(target & (iblEntries - 1))
	binary.LittleEndian.PutUint64(m.mem[m.lay.ibl+16*k:], uint64(-int64(target)))
	binary.LittleEndian.PutUint64(m.mem[m.lay.ibl+16*k+8:], uint64(entry))
}

func (m *Machine) reg(r amd64.Reg) uint64 {
	return binary.LittleEndian.Uint64(m.mem[gpr(r):])
}

func (m *Machine) setReg(r amd64.Reg, v uint64) {
	binary.LittleEndian.PutUint64(m.mem[gpr(r):], v)
}

// inCache reports whether pc is inside the code cache or the routines.
func (m *Machine) inCache(pc uintptr) bool {
	if m.genUnit.contains(pc) {
		return true
	}
	for _, u := range m.units {
		if u.contains(pc) {
			return true
		}
	}
	return pc >= m.ctx && pc-m.ctx < m.lay.size
}

// maxRereads bounds the translations fragmentFor makes again because a
// page it read was writable until then: one, unless a flush in between
// gave the pages their protection back.
const maxRereads = 3

// fragmentFor returns the fragment for tag, translating it if needed;
// after codeWritten, a transient one (see Machine.oneShot) unless tag
// has a fragment, which then cannot have been read from the page just
// written (its fragments are gone), and runs the write without
// protecting that page again.
func (m *Machine) fragmentFor(tag uintptr) (*fragment, error) {
	transient := m.oneShot
	m.oneShot = false
	if f := m.frags[tag]; f != nil {
		return f, nil
	}
	if m.inCache(tag) {
		return nil, fmt.Errorf("jit: the application jumped to %#x, inside reachvm's own code or data", tag)
	}
	m.lockCode()
	defer m.unlockCode()
	if f := m.frags[tag]; f != nil {
		// lockCode acted on changes: tag's fragment is still there.
		return f, nil
	}
	if _, err := m.codes.at(tag); err != nil {
		return nil, err
	}
	// held are the pages protected for a translation made again: those
	// it does not keep are released whichever way this returns.
	var held []uintptr
	rereads := 0
	defer func() {
		if held != nil {
			m.unhold(held)
		}
	}()
	for attempt := 0; ; attempt++ {
		u, err := m.unitWithRoom()
		if err != nil {
			return nil, err
		}
		t := &m.t
		t.pages, t.transient = t.pages[:0], transient
		// Align the body, where links, loop back edges and inline-cache
		// hits enter, rather than the table's entry before it. The
		// analyses of tag's code that the prefix and the inline-cache
		// slots learning tag rely on read pages too (t.pages).
		t.tagDead = m.deadAt(tag)
		_, n := m.iblRestores(t.tagDead)
		if m.opts.StrictFlags {
			m.flagsDeadAt(tag)
		}
		prefix := 7 * uintptr(n)
		entry, ok := mem.AlignUp(u.exec+u.used+prefix, m.opts.Align)
		entry -= prefix
		room := u.exec + u.size - entry
		if !ok || entry > u.exec+u.size {
			room = 0
		}
		t.a.Reset(entry)
		self := &fragment{tag: tag, entry: entry, unit: u, dead: transient}
		m.populateHeapAhead(self)
		err = t.block(tag, self, uint32(m.exits.len()), room)
		if err == nil && uintptr(t.a.Len()) <= room {
			if transient {
				f := m.install(u, self)
				m.deadExits += int(f.nexits)
				return f, nil
			}
			fresh, err := m.protectPages(t.pages)
			if err != nil {
				return nil, err
			}
			if fresh && rereads < maxRereads {
				// Read again what another thread may have written
				// before the protection: the pages stay in the index,
				// protected and held, and the next translation reads
				// them so.
				m.hold(t.pages)
				held = append(held, t.pages...)
				rereads++
				attempt--
				continue
			}
			self.pages = append([]uintptr(nil), t.pages...)
			f := m.install(u, self)
			m.index(f)
			m.installTables(f)
			return f, nil
		}
		if err != nil && !errors.Is(err, errFull) {
			var re *amd64.ReachError
			if !errors.As(err, &re) {
				return nil, err
			}
		}
		// Did not fit: the next unit, or a flush.
		if attempt >= 2 {
			return nil, fmt.Errorf("jit: the block at %#x does not fit in an empty %#x-byte unit", tag, m.opts.UnitSize)
		}
		m.nextUnit()
	}
}

// unitWithRoom returns the unit being filled, allocating the first one.
func (m *Machine) unitWithRoom() (*codeUnit, error) {
	if len(m.units) == 0 {
		u, err := allocUnit(m.code, m.opts.UnitSize)
		if err != nil {
			return nil, fmt.Errorf("jit: allocating a code-cache unit: %w", err)
		}
		if err := m.registerUnit(u, sigtramp.KindCode); err != nil {
			return nil, errors.Join(err, u.free())
		}
		m.units = append(m.units, u)
		m.cur = 0
	}
	return m.units[m.cur], nil
}

// nextUnit moves on to an empty unit: the next one already allocated, a
// new one while under MaxCacheSize, or, when the cache is full, the first
// one after a flush of everything. The cache never grows past its cap and
// never leaves vmcode: if vmcode itself has no room for another unit, the
// cache flushes instead.
func (m *Machine) nextUnit() {
	if m.cur+1 < len(m.units) {
		m.cur++
		return
	}
	if uintptr(len(m.units)+1)*m.opts.UnitSize <= m.opts.MaxCacheSize {
		if u, err := allocUnit(m.code, m.opts.UnitSize); err == nil {
			if m.registerUnit(u, sigtramp.KindCode) == nil {
				m.units = append(m.units, u)
				m.cur = len(m.units) - 1
				return
			}
			_ = u.free()
		}
	}
	m.flush()
}

// install writes the block in m.t at f.entry of u and records the
// fragment and its exits.
func (m *Machine) install(u *codeUnit, f *fragment) *fragment {
	t := &m.t
	code := t.a.Bytes()
	entry := f.entry
	if pad := entry - (u.exec + u.used); pad > 0 {
		var fill [64]byte
		for i := range fill {
			fill[i] = 0xcc
		}
		u.write(u.exec+u.used, fill[:pad])
	}
	u.write(entry, code)
	u.used = entry - u.exec + uintptr(len(code))
	f.size, f.instrs, f.prefix, f.codeLen = uint32(len(code)), int32(t.instrs), uint8(t.prefix), uint32(t.codeLen)
	f.marks = m.keepMarks(t.marks, f.tag)
	f.nexits = int32(len(t.exits))
	if !f.dead {
		m.frags[f.tag] = f
	}
	u.frags = append(u.frags, f)
	for _, pe := range t.exits {
		e := exit{kind: pe.kind, target: pe.target, stub: entry + uintptr(pe.stubOff), ic: pe.ic, owner: f}
		if pe.ic != nil {
			pe.ic.base, pe.ic.unit, pe.ic.owner = entry, u, f
		}
		if pe.hasFix {
			e.branch = entry + uintptr(pe.fix.End())
			if e.linked = pe.linked; e.linked != nil {
				m.stats.Links++
				if e.linked != f {
					e.linked.incoming = append(e.linked.incoming, m.exits.len())
				}
			}
		}
		id := m.exits.add(e)
		if pe.kind == exitBad {
			if m.bad == nil {
				m.bad = make(map[int]badInstr)
			}
			m.bad[id] = badInstr{why: pe.why, bytes: pe.bytes}
		}
	}
	if m.opts.views() {
		m.show(u, f)
	}
	m.stats.Fragments++
	m.stats.Blocks += t.bbs
	m.stats.Instrs += t.instrs
	m.stats.Mangled += t.mangled
	m.stats.SlotBranches += t.slotBranches
	return f
}

// link patches exit id to jump straight to f, unless either is dead.
func (m *Machine) link(id int, f *fragment) {
	e := m.exits.at(id)
	if e.branch == 0 || e.linked != nil || e.kind != exitDirect || e.owner.dead || f.dead {
		return
	}
	e.owner.unit.patchRel32(e.branch, f.body())
	e.linked = f
	f.incoming = append(f.incoming, id)
	m.stats.Links++
}

// learn fills the next free slot of an indirect-branch site with target
// and its fragment, and sends the site's learn exit to the table lookup
// once every slot is filled. A narrow site cannot hold a target above
// 2 GiB: it then goes to the table from now on.
func (m *Machine) learn(ic *icSite, target uintptr, f *fragment) {
	if ic.filled >= ic.n || ic.owner.dead || f.dead {
		return
	}
	if ic.narrow && target >= low {
		// A 32-bit slot cannot hold it: the table takes this site's
		// targets from now on.
		ic.n = ic.filled
		ic.unit.patchRel32(ic.base+uintptr(ic.learnEnd), ic.base+uintptr(ic.lookupOff))
		return
	}
	k := ic.filled
	ic.slots[k].pred = target
	ic.filled++
	if ic.form == formCmp {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(target))
		switch {
		case ic.lit:
			ic.unit.write(ic.base+uintptr(ic.slots[k].cmpOff), b[:])
		case ic.narrow:
			ic.unit.write(ic.base+uintptr(ic.slots[k].cmpOff), b[:4])
		default:
			ic.unit.write(ic.base+uintptr(ic.slots[k].cmpOff), b[:4])
			ic.unit.write(ic.base+uintptr(ic.slots[k].hiOff), b[4:])
		}
		if ic.keep && !m.flagsDeadAt(target) {
			// The target reads the flags: pop them instead of
			// dropping them. 9 bytes: popfq; lea rsp, [rsp+d-8].
			at := ic.base + uintptr(ic.slots[k].restoreOff)
			old := ic.unit.bytes(at, 9)
			d := int32(binary.LittleEndian.Uint32(old[4:8])) - 8
			var p [9]byte
			p[0] = 0x9d
			copy(p[1:5], []byte{0x48, 0x8d, 0xa4, 0x24})
			binary.LittleEndian.PutUint32(p[5:], uint32(d))
			ic.unit.write(at, p[:])
		}
	} else if ic.narrow {
		// Slot k and the empty ones after it.
		d := narrowDisp(ic)
		for j := k; j < ic.n; j++ {
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], uint32(d[j]))
			ic.unit.write(ic.base+uintptr(ic.slots[j].cmpOff), b[:])
		}
	} else {
		var imm [8]byte
		binary.LittleEndian.PutUint64(imm[:], uint64(-int64(target)))
		ic.unit.write(ic.base+uintptr(ic.slots[k].cmpOff), imm[:])
	}
	// Registers the target overwrites before reading need no restore.
	if ic.form != formCmp {
		dead := m.deadAt(target)
		nop7 := []byte{0x0f, 0x1f, 0x80, 0, 0, 0, 0}
		if dead.Has(uint8(amd64.RCX)) {
			ic.unit.write(ic.base+uintptr(ic.slots[k].restoreOff), nop7)
		}
		if ic.rdx && dead.Has(uint8(amd64.RDX)) {
			ic.unit.write(ic.base+uintptr(ic.slots[k].restoreOff)+7, nop7)
		}
	}
	ic.unit.patchRel32(ic.base+uintptr(ic.slots[k].hitEnd), f.body())
	f.slots = append(f.slots, slotRef{ic, k})
	m.stats.Links++
	if ic.filled == ic.n {
		ic.unit.patchRel32(ic.base+uintptr(ic.learnEnd), ic.base+uintptr(ic.lookupOff))
	}
}

// absTable reports whether the indirect-branch table lies below 2 GiB,
// where lookups address it with a 32-bit displacement and no register.
func (m *Machine) absTable() bool { return m.ctx+m.lay.ibl+16*iblEntries < low }

// deadAt returns the general registers that are dead at pc: overwritten
// whole before any read along the straight-line code from pc, as far as
// decode.Effects knows the instructions (up to 16 of them). Registers
// not proven dead are live. The pages it reads go to the translation's
// (translator.pages).
func (m *Machine) deadAt(pc uintptr) decode.Regs {
	code, err := m.codes.at(pc)
	if err != nil {
		return 0
	}
	var dead, decided decode.Regs
	var in decode.Inst
	for i, off := 0, 0; i < 16 && off < len(code); i++ {
		at := pc + uintptr(off)
		if decode.DecodeInto(code[off:], &in) != nil {
			m.t.note(at, at+min(decode.MaxLen, uintptr(len(code)-off)))
			break
		}
		m.t.note(at, at+uintptr(in.Len))
		if in.Kind != decode.Plain {
			break
		}
		r, k, ok := decode.Effects(code[off:], &in)
		if !ok {
			break
		}
		decided |= r
		dead |= k &^ decided
		decided |= k
		off += int(in.Len)
	}
	return dead
}

// flagsDeadAt reports whether the arithmetic flags are dead at pc: some
// instruction of the code from pc (straight on, and through direct
// jumps) overwrites them all before any reads them, as far as
// decode.FlagEffect knows the instructions. Unless Options.StrictFlags, a
// call or a return also ends their life: the psABI gives the flags no
// role across calls, so no conforming callee reads the caller's, and no
// caller reads a callee's.
func (m *Machine) flagsDeadAt(pc uintptr) bool {
	var in decode.Inst
	for i := 0; i < 16; i++ {
		code, err := m.codes.at(pc)
		if err != nil {
			return false
		}
		if decode.DecodeInto(code, &in) != nil {
			m.t.note(pc, pc+min(decode.MaxLen, uintptr(len(code))))
			return false
		}
		m.t.note(pc, pc+uintptr(in.Len))
		switch in.Kind {
		case decode.Plain:
		case decode.JmpRel:
			pc += uintptr(in.Len) + uintptr(int64(in.Rel))
			continue
		case decode.CallRel, decode.CallInd, decode.Ret:
			return !m.opts.StrictFlags
		default:
			return false
		}
		f, ok := decode.FlagEffect(code, &in)
		if !ok || f == decode.FlagsRead {
			return false
		}
		if f == decode.FlagsWrite {
			return true
		}
		pc += uintptr(in.Len)
	}
	return false
}

// polymorphic is how many new targets a site with full slots may send to
// the table before it stops comparing against its slots.
const polymorphic = 2

// missed counts a new target a site sent to the table and, past
// polymorphic, makes the site go straight to the table.
func (m *Machine) missed(ic *icSite) {
	limit := polymorphic
	if ic.keep {
		limit = 0 // its misses pay a popfq
	}
	if ic.n == 0 || ic.filled < ic.n || ic.extra > limit {
		return
	}
	ic.extra++
	if ic.extra > limit && ic.headLen >= 5 {
		// jmp lookup over the site's head, the rest of it no-ops so
		// that the code still decodes in sequence.
		j := make([]byte, ic.headLen)
		j[0] = 0xe9
		for i := 5; i < len(j); i++ {
			j[i] = 0x90
		}
		ic.unit.write(ic.base+uintptr(ic.headOff), j)
		ic.unit.patchRel32(ic.base+uintptr(ic.headOff)+5, ic.base+uintptr(ic.demoteOff))
		m.stats.Polymorphic++
	}
}

// ExitError reports that the application asked to exit (exit or
// exit_group): the run ends there, not the host process.
type ExitError struct{ Code int }

func (e *ExitError) Error() string {
	return fmt.Sprintf("jit: the application exited with code %d", e.Code)
}

// prepare sets up the application's registers, stack and vector state
// for a call with args that returns to ret.
func (m *Machine) prepare(ret uintptr, args []uintptr) {
	clear(m.mem[ctxGPR : ctxGPR+16*8])
	argRegs := []amd64.Reg{amd64.RDI, amd64.RSI, amd64.RDX, amd64.RCX, amd64.R8, amd64.R9}
	for i, a := range args {
		if i < len(argRegs) {
			m.setReg(argRegs[i], uint64(a))
		}
	}
	// The stack at the call: extra arguments above the return address,
	// rsp+8 16-byte aligned at the function's first instruction.
	var extra []uintptr
	if len(args) > len(argRegs) {
		extra = args[len(argRegs):]
	}
	sp := m.stack + m.stackSize - 64
	sp -= uintptr(len(extra)) * 8
	sp &^= 15
	stackMem := rawmem.Bytes(sp-8, uintptr(len(extra))*8+8)
	binary.LittleEndian.PutUint64(stackMem, uint64(ret))
	for i, a := range extra {
		binary.LittleEndian.PutUint64(stackMem[8+8*i:], uint64(a))
	}
	m.setReg(amd64.RSP, uint64(sp-8))
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], initialFlags)
	resetVectorState(m.mem[ctxXsave : ctxXsave+m.lay.xsaveSize])

}

// RunNative calls fn natively, untranslated, on the machine's stack and
// through the same context switch as Run: the baseline Run is measured
// against, with the same stack memory, the same entry and exit cost and
// the same vector-state handling. Pointers follow the package's pointer
// rule. The pages the machine write-protected because it translated code
// from them get their protection back first, and lose their translations:
// native code may write them, and no fault of its is reachvm's.
//
//go:uintptrescapes
func (m *Machine) RunNative(fn uintptr, args ...uintptr) (uintptr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("jit: native run: %w", ErrClosed)
	}
	if m.wpPages != 0 {
		m.willWrite(mem.Range{Start: m.pages.lo, End: m.pages.hi})
	}
	m.prepare(m.gen.nativeRet, args)
	id := native.Call1(m.gen.enter, fn)
	for id == exitArrived {
		// Signals recorded for a program run before: not this
		// call's.
		m.drainArrivals()
		id = native.Call1(m.gen.enter, fn)
	}
	if id != exitNative {
		return 0, fmt.Errorf("jit: internal error: native call left with exit %d", id)
	}
	return uintptr(m.reg(amd64.RAX)), nil
}

// Run runs the function at fn under the translator with integer or
// pointer arguments in the System V AMD64 convention (the first six in
// registers, the rest on the stack) and returns its integer result, as
// Call does natively. fn and everything it calls are translated into the
// code cache on first execution; the function runs on the machine's own
// stack, never on Go's. Pointers follow the package's pointer rule: the
// translator runs Go code during the call, which may grow, and so move,
// the calling goroutine's stack, but what a pointer argument points to is
// on the heap (//go:uintptrescapes), where it does not move.
//
//go:uintptrescapes
func (m *Machine) Run(fn uintptr, args ...uintptr) (uintptr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("jit: run: %w", ErrClosed)
	}
	// Code is written by the thread that runs it next, so no other
	// processor holds stale instructions (cross-modifying code).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	m.prepare(m.sentinel, args)
	// Library code runs with Go's FS, the C library's thread pointer,
	// as a C function called from Go would.
	m.setHostFS(0)
	m.setAppFS(m.libraryFS())
	done, err := m.runningOn(0)
	if err != nil {
		return 0, err
	}
	defer done()
	return m.dispatch(fn)
}

// dispatch runs the application from tag until it returns to the
// sentinel (the result is its rax), exits, or stops at something the
// translator refuses. The caller holds m.mu and has set up the context.
func (m *Machine) dispatch(tag uintptr) (uintptr, error) {
	// from is the exit that led to tag, to link once tag's fragment
	// exists, unless a flush came in between.
	from := 0
	epoch := m.epoch
	// resume goes back to the state the signal layer interrupted
	// instead of entering tag's fragment.
	resume := false
	// enterAt, when not 0, is a cache address to enter at instead of
	// tag's fragment: just past a wrapped function's exit, in the
	// fragment it left, which nothing deleted since.
	var enterAt uintptr
	t := m.th
	for {
		if *m.arrivals() != 0 {
			m.drainArrivals()
		}
		if t != nil && t.kicked.Load() {
			// Whatever a kick was sent for is looked at below.
			t.kicked.Store(false)
		}
		if w := m.work.Load(); w != 0 {
			if w&workExit != 0 {
				return 0, errExiting
			}
			// Not before a resume, which goes back into the fragment
			// the signal layer took the thread out of: that code must
			// stay where it is until the thread is out of it again.
			if !resume && enterAt == 0 {
				m.drainInbox()
			}
		}
		var id uintptr
		if resume {
			resume = false
			m.entered.Store(true)
			id = native.Call1(m.gen.resume, 0)
			m.entered.Store(false)
		} else if enterAt != 0 {
			m.enterGen = m.cs.gen.Load()
			m.entered.Store(true)
			id = native.Call1(m.gen.enter, enterAt)
			m.entered.Store(false)
			enterAt = 0
		} else {
			if t != nil && t.sigPending() {
				next, err := t.deliverPending(tag)
				if err != nil {
					return 0, err
				}
				if next != tag {
					tag, from = next, 0
				}
			}
			f, err := m.fragmentFor(tag)
			if err != nil {
				if tag, err = m.notCode(err, tag); err != nil {
					return 0, err
				}
				from = 0
				continue
			}
			if from != 0 && m.epoch == epoch {
				m.link(from, f)
			}
			// Entered before the last look at the work: another
			// thread either sees it and kicks, or its change is seen
			// here.
			m.entered.Store(true)
			if m.work.Load() != 0 {
				m.entered.Store(false)
				from = 0
				continue
			}
			m.enterGen = m.cs.gen.Load()
			id = native.Call1(m.gen.enter, f.body())
			m.entered.Store(false)
		}
		m.stats.Exits++
		epoch, from = m.epoch, 0
		if id == exitArrived {
			continue
		}
		if id != exitSignal {
			m.stopStepping()
		} else {
			var err error
			if tag, resume, err = m.takeSignal(); err != nil {
				return 0, err
			}
			continue
		}
		if id == 0 || id >= uintptr(m.exits.len()) {
			return 0, fmt.Errorf("jit: internal error: exit %d of %d", id, m.exits.len())
		}
		e := m.exits.at(int(id))
		switch e.kind {
		case exitDirect:
			tag, from = e.target, int(id)
		case exitSyscall:
			next, err := m.syscall(e.target)
			if err != nil {
				return 0, err
			}
			tag = next
		case exitFlush:
			m.flushTraces()
			tag = e.target
			if t == nil || !t.sigPending() {
				// Back into the fragment, whose code nothing
				// deleted meanwhile: the record is made again
				// (a fragment started at tag would run the
				// code inserted at its block's start again).
				enterAt = e.branch
			}
		case exitWrap:
			tag = e.target
			if t != nil && t.sigPending() {
				// The signal first: its handler returns to the
				// function's entry, and the pre hook runs then.
				continue
			}
			into, ret, err := m.wrapEnter(e.target)
			if err != nil {
				return 0, err
			}
			if into {
				enterAt = e.branch
			} else {
				tag = ret
			}
		case exitBad:
			b := m.bad[int(id)]
			return 0, &UnsupportedError{PC: e.target, Bytes: b.bytes, What: b.why}
		case exitLearn, exitSiteMiss:
			m.stats.IBLMisses++
			tag = uintptr(binary.LittleEndian.Uint64(m.mem[ctxNext:]))
			if tag == m.sentinel {
				return uintptr(m.reg(amd64.RAX)), nil
			}
			if tag == m.wrapRet() && len(m.wraps) > 0 {
				var err error
				if tag, err = m.wrapReturn(); err != nil {
					return 0, err
				}
				if tag == m.sentinel {
					return uintptr(m.reg(amd64.RAX)), nil
				}
				continue
			}
			ic, kind, epoch := e.ic, e.kind, m.epoch
			if !canonical(tag) {
				var err error
				if tag, err = m.nonCanonical(ic); err != nil {
					return 0, err
				}
				continue
			}
			f, err := m.fragmentFor(tag)
			if err != nil {
				if tag, err = m.notCode(err, tag); err != nil {
					return 0, err
				}
				continue
			}
			if m.epoch == epoch {
				if kind == exitLearn || ic.filled < ic.n {
					// A site that learns lazily learns from
					// a miss it exits for anyway. learn reads
					// the target's code.
					m.lockCode()
					if m.epoch == epoch {
						m.learn(ic, tag, f)
						m.resetVisits(ic)
					}
					m.unlockCode()
				} else {
					m.missed(ic)
				}
				if ic.jt != nil {
					m.linkTable(ic.jt, f)
				}
			}
			if !f.dead {
				m.setIBL(tag, f.entry)
			}
		}
	}
}
