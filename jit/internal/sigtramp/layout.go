package sigtramp

// The machine context's fields the handler reads and writes, as offsets
// from its start. The rest of the context is its owner's.
const (
	// OffFlags is the application's RFLAGS while it is outside the
	// cache.
	OffFlags = 0x080
	// OffHostRSP is the host stack pointer saved when the cache was
	// entered: where a redirected thread resumes, in the routine at
	// OffExit.
	OffHostRSP = 0x090
	// OffState holds StateRedirected, StateStepping and StateStepTrap.
	OffState = 0x0b8
	// OffTid is the thread id of the thread running the context, 0 when
	// none does.
	OffTid = 0x0c0
	// OffListen is the mask of the asynchronous signals the application
	// takes (bit sig-1).
	OffListen = 0x0c8
	// OffExit is the address of the routine a redirected thread resumes
	// at, on the host stack: it restores the host's state and returns
	// to Go as an exit of the cache.
	OffExit = 0x0d0
	// OffArea is the address of the signal area (Area* offsets).
	OffArea = 0x0d8
	// OffXsaveSize is how many bytes of the interrupted vector state
	// (the signal frame's XSAVE image) are copied to AreaXsave.
	OffXsaveSize = 0x0e0
	// OffArrivals counts the signals recorded at AreaArrivals.
	OffArrivals = 0x0e8
	// OffForwarded has bit sig-1 set while AreaForward holds the
	// siginfo of signal sig, forwarded from another thread.
	OffForwarded = 0x0f0
	// OffAppFS is the application's FS base, which the routines load
	// when they enter the cache.
	OffAppFS = 0x0f8
	// OffHostFS is the FS base of the thread running the context as Go
	// needs it, which the routines and the handler put back before any
	// Go code runs; when it is 0 or equals OffAppFS, FS is never
	// switched.
	OffHostFS = 0x100
	// OffGateEINTR is where a thread interrupted in the window of the
	// context's system-call gate (a KindGate region: after the gate
	// looked at the arrivals, before its syscall instruction ran) goes
	// on instead: the gate's return without making the call, so that a
	// signal that comes just before a blocking call is not left waiting
	// for it.
	OffGateEINTR = 0x108
	// HeaderEnd is where the fields above end.
	HeaderEnd = 0x110
)

// The signal area.
const (
	// AreaInfo is the siginfo of the signal that redirected the thread.
	AreaInfo = 0
	// AreaRegs are the interrupted general registers, the signal frame's
	// mcontext gregs in the kernel's order (Reg*).
	AreaRegs = 128
	// AreaArrivals holds up to MaxArrivals siginfos of asynchronous
	// signals that came while the thread was not in translated code.
	AreaArrivals = AreaRegs + 192
	// MaxArrivals bounds them; more are dropped, as the kernel keeps
	// one pending instance of a standard signal.
	MaxArrivals = 16
	// AreaForward holds, for each signal, the siginfo of one that came
	// to another thread and was forwarded to this one: the kernel lets
	// a thread queue a siginfo of the kernel's or of kill only to
	// itself, so the forwarding thread leaves it here and sends a plain
	// tgkill, which the handler on this thread swaps for it.
	AreaForward = AreaArrivals + MaxArrivals*InfoSize
	// AreaXsave is the interrupted vector state, 64-byte aligned in the
	// area (the area itself is 64-byte aligned).
	AreaXsave = AreaForward + 64*InfoSize
	// InfoSize is a siginfo's size.
	InfoSize = 128
)

// StateRedirected is set by the handler when it sent the thread back to
// the dispatcher; StateStepping by the dispatcher (or the handler) while
// it single-steps the thread to a point where the application's state is
// exact; StateStepTrap by the handler with StateRedirected when the
// signal it redirected is the trap of such a step. StateStepping alone
// does not say so by the time the dispatcher looks: a signal that comes
// in the exit routine steps the thread out of it into Go, which clears
// StateStepping.
const (
	StateRedirected = 1
	StateStepping   = 2
	StateStepTrap   = 4
)

// Indices of the general registers in AreaRegs (struct sigcontext).
const (
	RegR8 = iota
	RegR9
	RegR10
	RegR11
	RegR12
	RegR13
	RegR14
	RegR15
	RegRDI
	RegRSI
	RegRBP
	RegRBX
	RegRDX
	RegRAX
	RegRCX
	RegRSP
	RegRIP
	RegEFLAGS
	RegCSGSFS
	RegErr
	RegTrapno
	RegOldmask
	RegCR2
	NumRegs
)

// TF is RFLAGS' trap flag.
const TF = 0x100
