package clients

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// This file runs native clients: shared libraries written against
// include/reachvm.h, loaded privately into vmcode. Every crossing is a
// plain call from Go into the client (privload's Call, on the thread the
// event is about), with a pointer to a struct of the header's that Go
// fills before and reads after: the client never calls Go. The structs
// below mirror the header's field for field (TestNativeLayout compiles
// the header and compares every offset and size); each field's `c` tag
// is its name in C.
//
// The structs are allocated on the Go heap, which does not move what it
// allocates, and each is kept reachable from Go (the Tool, or the
// thread's Data) for as long as the client may read it: the pointers
// in them are uintptrs, so the collector neither follows nor minds them.

// nativeVersion is RV_API_VERSION of the header this file implements.
const nativeVersion = 2

// initSymbol is the function a native client exports.
const initSymbol = "reachvm_client_init"

// cThread is struct rv_thread.
type cThread struct {
	tid      int32   `c:"tid"`
	reserved int32   `c:"reserved"`
	data     uintptr `c:"data"`
}

// cInstr is struct rv_instr.
type cInstr struct {
	pc        uint64  `c:"pc"`
	bytes     uintptr `c:"bytes"`
	len       uint32  `c:"len"`
	isControl uint32  `c:"is_control"`
	mnemonic  uintptr `c:"mnemonic"`
	hasMem    uint32  `c:"has_mem"`
	nmems     uint32  `c:"nmems"`
	mems      uintptr `c:"mems"`
}

// cMemRef is struct rv_memref.
type cMemRef struct {
	disp     int64   `c:"disp"`
	size     uint32  `c:"size"`
	flags    uint16  `c:"flags"`
	seg      uint8   `c:"seg"`
	scale    uint8   `c:"scale"`
	base     uint8   `c:"base"`
	index    uint8   `c:"index"`
	reserved [6]byte `c:"reserved"`
}

// rv_memref's flags (enum rv_memref_flags) and RV_NO_REG.
const (
	memRefRead     = 1
	memRefWrite    = 2
	memRefImplicit = 4
	memRefRIP      = 8
	memRefAddrOnly = 16
	memRefAddr32   = 32
	memRefRepeat   = 64
	noReg          = 255
)

// cMemRefOf converts r, a reference of an instruction whose mnemonic
// says whether it repeats.
func cMemRefOf(r jit.MemRef, rep bool) cMemRef {
	c := cMemRef{disp: r.Disp, size: uint32(r.Size), seg: uint8(r.Seg), scale: r.Scale, base: noReg, index: noReg}
	if r.HasBase {
		c.base = uint8(r.Base)
	}
	if r.HasIndex {
		c.index = uint8(r.Index)
	}
	for _, f := range []struct {
		on   bool
		flag uint16
	}{{r.Read, memRefRead}, {r.Write, memRefWrite}, {r.Implicit, memRefImplicit}, {r.RIPRelative, memRefRIP},
		{r.AddressOnly, memRefAddrOnly}, {r.Addr32, memRefAddr32}, {rep && r.Implicit, memRefRepeat}} {
		if f.on {
			c.flags |= f.flag
		}
	}
	return c
}

// Argument kinds (enum rv_arg_kind).
const (
	argConst = 1
	argReg   = 2
	argPC    = 3
	argEA    = 4
	argCtx   = 5
)

// cArg is struct rv_arg.
type cArg struct {
	kind  uint32 `c:"kind"`
	reg   uint32 `c:"reg"`
	value int64  `c:"value"`
}

// Insertion kinds (enum rv_insert_kind).
const (
	insertAdd        = 1
	insertCleanCall  = 2
	insertRecordEA   = 3
	insertRecordAddr = 4
	insertRecordRef  = 5
)

// cTraceRecord is struct rv_trace_record: jit.TraceRecord, whose
// records the trace event gets in place.
type cTraceRecord struct {
	addr  uint64 `c:"addr"`
	tag   uint32 `c:"tag"`
	extra uint32 `c:"extra"`
}

// maxArgs is RV_MAX_ARGS.
const maxArgs = 6

// Insertion flags (enum rv_insert_flags): flagLocked makes an add
// atomic, flagVector a clean call keep the vector state.
const (
	flagLocked = 1
	flagVector = 2
)

// cInsert is struct rv_insert.
type cInsert struct {
	kind   uint32        `c:"kind"`
	at     int32         `c:"at"`
	target uint64        `c:"target"`
	n      int64         `c:"n"`
	flags  uint32        `c:"flags"`
	nargs  uint32        `c:"nargs"`
	args   [maxArgs]cArg `c:"args"`
}

// blockErrors are enum rv_block_error's reasons, by value.
var blockErrors = [...]string{
	1: "more insertions than the block has room for",
	2: "an instruction index out of the block",
	3: "a bad clean-call argument count or kind",
	4: "an add that does not fit in 32 bits",
	5: "a NULL pointer",
	6: "no such function",
	7: "not allowed where it was asked",
}

// cBlock is struct rv_block.
type cBlock struct {
	pc         uint64  `c:"pc"`
	n          int32   `c:"n"`
	ninserts   uint32  `c:"ninserts"`
	insertsCap uint32  `c:"inserts_cap"`
	error      int32   `c:"error"`
	instrs     uintptr `c:"instrs"`
	inserts    uintptr `c:"inserts"`
	thread     uintptr `c:"thread"`
	module     uintptr `c:"module"`
}

// cSyscall is struct rv_syscall.
type cSyscall struct {
	thread   uintptr   `c:"thread"`
	nr       uint64    `c:"nr"`
	args     [6]uint64 `c:"args"`
	result   uint64    `c:"result"`
	skip     int32     `c:"skip"`
	reserved int32     `c:"reserved"`
}

// cModule is struct rv_module.
type cModule struct {
	path   uintptr `c:"path"`
	base   uint64  `c:"base"`
	end    uint64  `c:"end"`
	nsyms  uint32  `c:"nsyms"`
	nnames uint32  `c:"nnames"`
	syms   uintptr `c:"syms"`
	names  uintptr `c:"names"`
	wraps  uintptr `c:"wraps"`
}

// cSignal is struct rv_signal.
type cSignal struct {
	thread   uintptr `c:"thread"`
	signo    int32   `c:"signo"`
	code     int32   `c:"code"`
	addr     uint64  `c:"addr"`
	pc       uint64  `c:"pc"`
	fault    int32   `c:"fault"`
	suppress int32   `c:"suppress"`
	siginfo  uintptr `c:"siginfo"`
}

// cExit is struct rv_exit.
type cExit struct {
	status int32   `c:"status"`
	fd     int32   `c:"fd"`
	err    uintptr `c:"error"`
}

// cClient is struct rv_client.
type cClient struct {
	version     uint32  `c:"version"`
	size        uint32  `c:"size"`
	name        uintptr `c:"name"`
	block       uintptr `c:"block"`
	threadStart uintptr `c:"thread_start"`
	threadExit  uintptr `c:"thread_exit"`
	syscallPre  uintptr `c:"syscall_pre"`
	syscallPost uintptr `c:"syscall_post"`
	exit        uintptr `c:"exit"`
	modLoad     uintptr `c:"module_load"`
	modUnload   uintptr `c:"module_unload"`
	signal      uintptr `c:"signal"`
	trace       uintptr `c:"trace"`
}

// native is a loaded native client.
type native struct {
	// name names the client in errors: the name it gave, else its
	// file's base name.
	name string
	// lib is the client's library. images are the slots of it and of
	// the libraries loaded privately with it, [lo, hi) each: the events,
	// cells and functions the client gives must lie in one, in vmcode.
	lib    *privload.Library
	images []image
	// ev are the client's events as its init left them; the Funcs are
	// they, callable (a zero Func for an event it did not set).
	ev                                              cClient
	block, threadStart, threadExit, pre, post, exit privload.Func
	modLoad, modUnload, signal, trace               privload.Func
	// tbuf is the client's trace buffer, if it has a trace event.
	tbuf *jit.TraceBuffer
	// argv holds the C strings of the arguments and the array of
	// pointers to them: the client may keep argv.
	argv [][]byte
	argp []uintptr

	// jc is the jit.Client running the events, which wraps.
	jc *jit.Client
	// mods are the modules the client was told of, while they are
	// loaded, if it takes module events (follows): the struct
	// rv_module each stands for it. modMu guards mods; wrapMu the
	// wrap table module_load fills.
	follows  bool
	modMu    sync.Mutex
	mods     map[*jit.Module]*nmodule
	wrapMu   sync.Mutex
	wrapTab  cWrapTable
	wrapRoom []cWrap
	// wrapFailed: a module_load's wraps were refused (eventErr says
	// why).
	wrapFailed atomic.Bool

	// mu guards status and errText, which the Exit event sets and Report
	// reads, and eventErr, the first error of a block event (see
	// failBlock) or of a module_load's wraps, which Report returns.
	mu       sync.Mutex
	status   int
	errText  []byte
	eventErr error
}

// image is a private library's slot, [lo, hi).
type image struct{ lo, hi uintptr }

// nthread is a thread's part of a native client, its jit.Thread's Data:
// the structs of its events, reused from one event to the next.
type nthread struct {
	t   cThread
	blk cBlock
	sc  cSyscall
	// instrs, mems and ins are the block's arrays, grown as blocks
	// need.
	instrs []cInstr
	mems   []cMemRef
	ins    []cInsert
	// wc is the struct rv_wrapcall of the thread's wrap hooks.
	wc cWrapCall
}

// nativeSystem are the libraries a native client binds to the host's
// copies of (see privload.Options.System): glibc's, and C++'s runtime
// (libstdc++, libgcc_s), whose thread-local storage the host's dynamic
// linker sets up. The client's own code and data are private, in vmcode,
// where the code cache reaches them; what it calls in these is called
// from the client, never from the code cache. (privload can load the
// C++ runtime privately too, but TestNativeCPlusPlus, whose client
// throws, registers its unwind tables (RV_CXX_EXCEPTIONS) and is
// unloaded after its init refused, then crashes in the private copy's
// finalisers.)
var nativeSystem = append(slices.Clip(privload.DefaultSystem), "libstdc++.so.6", "libgcc_s.so.1")

// isNativePath reports whether New takes name as a native client's file
// rather than a sample's name: a path (with a slash) or a .so.
func isNativePath(name string) bool {
	return strings.Contains(name, "/") || strings.HasSuffix(name, ".so")
}

// LoadNative loads the native client at path into v's vmcode, which must
// be the vmcode of the machine the client will run in (the code cache
// reaches the client's cells and functions with rel32 displacements),
// and runs its reachvm_client_init with args (argv[0] is path). The
// Tool's Report runs the client's exit event with the descriptor of the
// writer it is given; its Close unloads the client.
//
// A path without a slash is relative to the current directory, as on
// run's command line: it is not looked for as a library name is.
func LoadNative(v *vmm.VMM, path string, args []string) (*Tool, error) {
	if v == nil {
		return nil, fmt.Errorf("clients: %s: a native client needs the VMM of the machine it runs in", path)
	}
	if !strings.Contains(path, "/") {
		path = "./" + path
	}
	lib, err := privload.Load(v, path, privload.Options{System: nativeSystem})
	if err != nil {
		return nil, fmt.Errorf("clients: loading native client: %w", err)
	}
	n, err := initNative(lib, path, args)
	if err != nil {
		lib.Close()
		return nil, err
	}
	t := &Tool{Name: n.name, Report: n.report, close: lib.Close}
	t.Client = n.jitClient()
	return t, nil
}

// initNative runs the client's init and returns it ready.
func initNative(lib *privload.Library, path string, args []string) (*native, error) {
	n := &native{name: filepath.Base(path), lib: lib}
	for _, l := range lib.Libraries() {
		n.images = append(n.images, image{l.Start(), l.Start() + l.Size()})
	}
	initFn, err := lib.Func(initSymbol)
	if err != nil {
		return nil, fmt.Errorf("clients: %s is not a reachvm client: %w", path, err)
	}
	for _, a := range append([]string{path}, args...) {
		n.argv = append(n.argv, append([]byte(a), 0))
	}
	n.argp = make([]uintptr, len(n.argv)+1)
	for i, a := range n.argv {
		n.argp[i] = uintptr(unsafe.Pointer(&a[0]))
	}
	// The client fills a struct rv_client with room after it: one built
	// against a newer header than this reachvm's may write fields this
	// one does not know, which must land in memory of no use.
	fill := new(struct {
		ev   cClient
		room [512]byte
	})
	fill.ev.version = nativeVersion
	fill.ev.size = uint32(unsafe.Sizeof(fill.ev))
	r, err := initFn.Call3(uintptr(unsafe.Pointer(fill)), uintptr(len(n.argv)), uintptr(unsafe.Pointer(&n.argp[0])))
	runtime.KeepAlive(n)
	n.ev = fill.ev
	if err != nil {
		return nil, fmt.Errorf("clients: %s: %w", path, err)
	}
	if n.ev.name != 0 {
		if s := privload.GoString(n.ev.name); s != "" {
			n.name = s
		}
	}
	if int32(r) != 0 {
		return nil, fmt.Errorf("clients: %s: %s returned %d: the client refused to run", path, initSymbol, int32(r))
	}
	for _, e := range []struct {
		addr uintptr
		fn   *privload.Func
		what string
	}{
		{n.ev.block, &n.block, "block"}, {n.ev.threadStart, &n.threadStart, "thread_start"},
		{n.ev.threadExit, &n.threadExit, "thread_exit"}, {n.ev.syscallPre, &n.pre, "syscall_pre"},
		{n.ev.syscallPost, &n.post, "syscall_post"}, {n.ev.exit, &n.exit, "exit"},
		{n.ev.modLoad, &n.modLoad, "module_load"}, {n.ev.modUnload, &n.modUnload, "module_unload"},
		{n.ev.signal, &n.signal, "signal"}, {n.ev.trace, &n.trace, "trace"},
	} {
		if e.addr == 0 {
			continue
		}
		if !n.inImage(e.addr, 1) {
			return nil, fmt.Errorf("clients: %s: its %s event, %#x, is not in its image %s", n.name, e.what, e.addr, n.imageText())
		}
		*e.fn = privload.FuncAt(e.addr, n.name+"."+e.what)
	}
	if n.ev.trace != 0 {
		n.tbuf = jit.NewTraceBuffer(n.traceEvent)
	}
	return n, nil
}

// inImage reports whether [addr, addr+size) lies in the client's image:
// its library's slot, or a slot of a library loaded privately with it.
func (n *native) inImage(addr, size uintptr) bool {
	for _, im := range n.images {
		if addr >= im.lo && addr < im.hi && size <= im.hi-addr {
			return true
		}
	}
	return false
}

// imageText describes the client's image for errors.
func (n *native) imageText() string {
	var b strings.Builder
	for i, im := range n.images {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%#x, %#x)", im.lo, im.hi)
	}
	return b.String()
}

// jitClient returns the jit.Client running n's events: only those the
// client has, so that the others cost nothing.
func (n *native) jitClient() *jit.Client {
	c := &jit.Client{Exit: n.exitEvent}
	if n.ev.block != 0 {
		c.Block = n.blockEvent
	}
	if n.ev.threadStart != 0 {
		c.ThreadStart = func(t *jit.Thread) { n.call(n.threadStart, unsafe.Pointer(&n.thread(t).t)) }
	}
	if n.ev.threadExit != 0 {
		c.ThreadExit = func(t *jit.Thread) { n.call(n.threadExit, unsafe.Pointer(&n.thread(t).t)) }
	}
	if n.ev.syscallPre != 0 {
		c.SyscallPre = n.syscallPre
	}
	if n.ev.syscallPost != 0 {
		c.SyscallPost = n.syscallPost
	}
	if n.ev.modLoad != 0 || n.ev.modUnload != 0 {
		// Both, whichever the client has: the modules' structs live
		// from the one to the other.
		n.follows = true
		c.ModuleLoad = n.moduleLoad
		c.ModuleUnload = n.moduleUnload
	}
	if n.ev.modLoad != 0 {
		// A module_load whose wraps were refused fails the run at the
		// next translation, the module's first block, as a block
		// event's error does: the jit has no other way to fail it,
		// and the program must not run unwrapped as if all were well.
		block := c.Block
		c.Block = func(b *jit.Block) {
			if n.wrapFailed.Load() {
				n.failBlock(b, nil)
				return
			}
			if block != nil {
				block(b)
			}
		}
	}
	if n.ev.signal != 0 {
		c.Signal = n.signalEvent
	}
	n.jc = c
	return c
}

// call calls the event f with p. Its only error is the library's being
// closed, after the run, when no events come.
func (n *native) call(f privload.Func, p unsafe.Pointer) {
	_, _ = f.Call1(uintptr(p))
}

// thread returns t's part of the client, made at the first event of the
// thread.
func (n *native) thread(t *jit.Thread) *nthread {
	if nt, ok := t.Data.(*nthread); ok {
		return nt
	}
	nt := &nthread{t: cThread{tid: int32(t.TID)}}
	t.Data = nt
	return nt
}

// insertsPerInstr and insertsBase size a block's insertion array:
// insertsBase + insertsPerInstr*n records for a block of n instructions
// (an rv_insert is 128 bytes; the array is reused).
const (
	insertsBase     = 16
	insertsPerInstr = 4
)

// blockEvent gives the client the block b and turns what it inserted
// into b's insertions.
func (n *native) blockEvent(b *jit.Block) {
	nt := n.thread(b.Thread())
	k := b.Len()
	if cap(nt.instrs) < k {
		nt.instrs = make([]cInstr, k, 2*k)
	}
	nt.instrs = nt.instrs[:k]
	for i := range k {
		in := b.Instr(i)
		code := in.Bytes()
		nt.instrs[i] = cInstr{pc: uint64(in.PC()), bytes: uintptr(unsafe.Pointer(&code[0])), len: uint32(in.Len())}
		if in.IsControl() {
			nt.instrs[i].isControl = 1
		}
		if in.HasMemOperand() {
			nt.instrs[i].hasMem = 1
		}
		nt.instrs[i].mnemonic = cMnemonic(in.Mnemonic())
	}
	// The memory references, in one array the instructions point into
	// (sized first: the pointers must not move).
	nm := 0
	for i := range k {
		nm += len(b.Instr(i).MemRefs())
	}
	if cap(nt.mems) < nm {
		nt.mems = make([]cMemRef, 0, 2*nm)
	}
	nt.mems = nt.mems[:0]
	for i := range k {
		in := b.Instr(i)
		refs := in.MemRefs()
		if len(refs) == 0 {
			continue
		}
		rep := strings.HasPrefix(in.Mnemonic(), "rep")
		first := len(nt.mems)
		for _, r := range refs {
			nt.mems = append(nt.mems, cMemRefOf(r, rep))
		}
		nt.instrs[i].nmems = uint32(len(refs))
		nt.instrs[i].mems = uintptr(unsafe.Pointer(&nt.mems[first]))
	}
	room := insertsBase + insertsPerInstr*k
	if cap(nt.ins) < room {
		nt.ins = make([]cInsert, room)
	}
	nt.ins = nt.ins[:room]
	nt.blk = cBlock{
		pc: uint64(b.PC()), n: int32(k), insertsCap: uint32(room),
		instrs: uintptr(unsafe.Pointer(&nt.instrs[0])), inserts: uintptr(unsafe.Pointer(&nt.ins[0])),
		thread: uintptr(unsafe.Pointer(&nt.t)),
	}
	var mod *nmodule
	if n.follows {
		if mod = n.moduleOf(b.Module()); mod != nil {
			nt.blk.module = uintptr(unsafe.Pointer(&mod.c))
		}
	}
	n.call(n.block, unsafe.Pointer(&nt.blk))
	runtime.KeepAlive(mod)
	if err := n.insert(jitSink{b}, &nt.blk, nt.ins); err != nil {
		n.failBlock(b, err)
	}
}

// blockSink is what insert turns a block event's records into: a
// *jit.Block, or a test's recorder.
type blockSink interface {
	Len() int
	AddCell(i int, cell uintptr, n int64, locked bool)
	CleanCall(i int, fn uintptr, args ...jit.Arg)
	CleanCallVector(i int, fn uintptr, args ...jit.Arg)
	RecordEA(i int, buf *jit.TraceBuffer, tag uint32)
	RecordAddr(i int, buf *jit.TraceBuffer, base jit.Reg, disp int32, tag uint32)
	RecordRef(i int, buf *jit.TraceBuffer, ref jit.MemRef, tag uint32)
	// MemRefs are instruction i's memory references.
	MemRefs(i int) []jit.MemRef
}

// jitSink is a *jit.Block as a blockSink.
type jitSink struct{ *jit.Block }

func (s jitSink) MemRefs(i int) []jit.MemRef { return s.Instr(i).MemRefs() }

// insert turns the records the block event left in blk into b's
// insertions, checking each: what the client wrote is untrusted, and
// only what passes reaches the jit. FuzzNativeInsert fuzzes it.
func (n *native) insert(b blockSink, blk *cBlock, ins []cInsert) error {
	if e := blk.error; e != 0 {
		why := fmt.Sprintf("error %d", e)
		if e > 0 && int(e) < len(blockErrors) && blockErrors[e] != "" {
			why = blockErrors[e]
		}
		return fmt.Errorf("clients: %s: block %#x: %s", n.name, blk.pc, why)
	}
	if blk.ninserts > uint32(len(ins)) {
		return fmt.Errorf("clients: %s: block %#x: %d insertions, in room for %d", n.name, blk.pc, blk.ninserts, len(ins))
	}
	for i := range ins[:blk.ninserts] {
		in := &ins[i]
		if in.at < 0 || int(in.at) >= b.Len() {
			return fmt.Errorf("clients: %s: block %#x: insertion before instruction %d of %d", n.name, blk.pc, in.at, b.Len())
		}
		switch in.kind {
		case insertAdd:
			if !n.inImage(uintptr(in.target), 8) || in.target%8 != 0 {
				return fmt.Errorf("clients: %s: block %#x: the cell %#x is not an aligned word of the client's image %s", n.name, blk.pc, in.target, n.imageText())
			}
			if in.n != int64(int32(in.n)) {
				return fmt.Errorf("clients: %s: block %#x: an add of %d, which does not fit in 32 bits", n.name, blk.pc, in.n)
			}
			if in.flags&^flagLocked != 0 {
				return fmt.Errorf("clients: %s: block %#x: an add with flags %#x", n.name, blk.pc, in.flags)
			}
			n.addCell(b, int(in.at), uintptr(in.target), in.n, in.flags&flagLocked != 0)
		case insertRecordEA, insertRecordAddr, insertRecordRef:
			if n.tbuf == nil {
				return fmt.Errorf("clients: %s: block %#x: a trace record, and no trace event to take it", n.name, blk.pc)
			}
			if in.n != int64(uint32(in.n)) {
				return fmt.Errorf("clients: %s: block %#x: a record's tag %d, which does not fit in 32 bits", n.name, blk.pc, in.n)
			}
			if in.kind == insertRecordRef {
				refs := b.MemRefs(int(in.at))
				if in.target >= uint64(len(refs)) {
					return fmt.Errorf("clients: %s: block %#x: a record of memory reference %d of an instruction with %d", n.name, blk.pc, in.target, len(refs))
				}
				b.RecordRef(int(in.at), n.tbuf, refs[in.target], uint32(in.n))
				break
			}
			if in.kind == insertRecordEA {
				b.RecordEA(int(in.at), n.tbuf, uint32(in.n))
				break
			}
			a := in.args[0]
			if in.nargs != 1 || a.kind != argReg || a.reg > uint32(jit.R15) || a.value != int64(int32(a.value)) {
				return fmt.Errorf("clients: %s: block %#x: a record of an address with %d arguments, the first of kind %d, register %d, displacement %d", n.name, blk.pc, in.nargs, a.kind, a.reg, a.value)
			}
			b.RecordAddr(int(in.at), n.tbuf, jit.Reg(a.reg), int32(a.value), uint32(in.n))
		case insertCleanCall:
			if !n.inImage(uintptr(in.target), 1) {
				return fmt.Errorf("clients: %s: block %#x: the clean call's function %#x is not in the client's image %s", n.name, blk.pc, in.target, n.imageText())
			}
			if in.nargs > maxArgs {
				return fmt.Errorf("clients: %s: block %#x: a clean call with %d arguments (at most %d)", n.name, blk.pc, in.nargs, maxArgs)
			}
			for j, a := range in.args[:in.nargs] {
				if a.kind < argConst || a.kind > argCtx || (a.kind == argReg && a.reg > uint32(jit.R15)) {
					return fmt.Errorf("clients: %s: block %#x: clean-call argument %d of kind %d, register %d", n.name, blk.pc, j, a.kind, a.reg)
				}
			}
			if in.flags&^flagVector != 0 {
				return fmt.Errorf("clients: %s: block %#x: a clean call with flags %#x", n.name, blk.pc, in.flags)
			}
			n.cleanCall(b, int(in.at), uintptr(in.target), in.flags&flagVector != 0, in.args[:in.nargs])
		default:
			return fmt.Errorf("clients: %s: block %#x: an insertion of kind %d", n.name, blk.pc, in.kind)
		}
	}
	return nil
}

// syscallPre gives the client the system call s before it is made and
// applies what the client changed.
func (n *native) syscallPre(s *jit.Syscall) {
	nt := n.thread(s.Thread)
	sc := &nt.sc
	*sc = cSyscall{thread: uintptr(unsafe.Pointer(&nt.t)), nr: s.Nr}
	for i, a := range s.Args {
		sc.args[i] = uint64(a)
	}
	n.call(n.pre, unsafe.Pointer(sc))
	s.Nr = sc.nr
	for i, a := range sc.args {
		s.Args[i] = uintptr(a)
	}
	if sc.skip != 0 {
		s.Skip(sc.result)
	}
}

// syscallPost gives the client the system call s, made, and applies the
// result it leaves.
func (n *native) syscallPost(s *jit.Syscall) {
	nt := n.thread(s.Thread)
	sc := &nt.sc
	*sc = cSyscall{thread: uintptr(unsafe.Pointer(&nt.t)), nr: s.Nr, result: s.Result}
	for i, a := range s.Args {
		sc.args[i] = uint64(a)
	}
	n.call(n.post, unsafe.Pointer(sc))
	s.Result = sc.result
}

// traceEvent gives the client's trace event the records t made.
func (n *native) traceEvent(t *jit.Thread, recs []jit.TraceRecord) {
	if len(recs) == 0 {
		return
	}
	nt := n.thread(t)
	_, _ = n.trace.Call3(uintptr(unsafe.Pointer(&nt.t)), uintptr(unsafe.Pointer(&recs[0])), uintptr(len(recs)))
}

// signalEvent gives the client the signal s before its delivery, and
// suppresses it if the client says so.
func (n *native) signalEvent(s *jit.SignalEvent) {
	nt := n.thread(s.Thread)
	info := new(jit.SigInfo)
	*info = s.Info
	cs := &cSignal{thread: uintptr(unsafe.Pointer(&nt.t)), signo: int32(info.Signo()), code: info.Code(),
		addr: uint64(info.Addr()), pc: uint64(s.PC), siginfo: uintptr(unsafe.Pointer(info))}
	if s.Fault {
		cs.fault = 1
	}
	n.call(n.signal, unsafe.Pointer(cs))
	runtime.KeepAlive(info)
	if cs.suppress != 0 {
		s.Suppress()
	}
}

// exitEvent keeps the run's end for Report, which runs the client's
// exit event with the report's descriptor.
func (n *native) exitEvent(e *jit.ExitEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.status = e.Status
	var killed *jit.SignalError
	if errors.As(e.Err, &killed) {
		n.status = 128 + int(killed.Signal)
	}
	n.errText = nil
	if e.Err != nil {
		n.errText = append([]byte(e.Err.Error()), 0)
	}
}

// report runs the client's exit event, which writes the report to the
// descriptor it is given: w's own if w is a file, else a pipe whose
// other end is copied to w.
func (n *native) report(w io.Writer) error {
	if err := n.runExit(w); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.eventErr
}

// runExit runs the client's exit event, if it has one, with w's
// descriptor.
func (n *native) runExit(w io.Writer) error {
	if n.exit.Addr() == 0 {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ex := cExit{status: int32(n.status)}
	if n.errText != nil {
		ex.err = uintptr(unsafe.Pointer(&n.errText[0]))
	}
	run := func(fd uintptr) {
		ex.fd = int32(fd)
		n.call(n.exit, unsafe.Pointer(&ex))
	}
	if f, ok := w.(*os.File); ok {
		rc, err := f.SyscallConn()
		if err != nil {
			return fmt.Errorf("clients: %s report: %w", n.name, err)
		}
		if err := rc.Control(run); err != nil {
			return fmt.Errorf("clients: %s report: %w", n.name, err)
		}
		return nil
	}
	// A pipe of blocking descriptors: the client's writes wait for the
	// copy (os.Pipe's are non-blocking, and a write to a full one would
	// fail the client's with EAGAIN).
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		return fmt.Errorf("clients: %s report: %w", n.name, err)
	}
	r := os.NewFile(uintptr(fds[0]), "report")
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, r)
		r.Close()
		copied <- err
	}()
	run(uintptr(fds[1]))
	err := syscall.Close(fds[1])
	if cerr := <-copied; err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("clients: %s report: %w", n.name, err)
	}
	return nil
}

// cMnemonics are the mnemonics given to native clients, each a
// NUL-terminated copy kept for the process's life (a client may keep the
// pointer): there are a few thousand at most.
var cMnemonics sync.Map // string -> *[]byte

// cMnemonic returns the address of m's C string, 0 for "".
func cMnemonic(m string) uintptr {
	if m == "" {
		return 0
	}
	if p, ok := cMnemonics.Load(m); ok {
		return uintptr(unsafe.Pointer(&(*p.(*[]byte))[0]))
	}
	b := append([]byte(m), 0)
	p, _ := cMnemonics.LoadOrStore(m, &b)
	return uintptr(unsafe.Pointer(&(*p.(*[]byte))[0]))
}
