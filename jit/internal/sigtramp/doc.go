// Package sigtramp is reachvm's signal layer in front of the Go runtime's:
// raw signal handlers, in assembly, that decide from the interrupted PC,
// the signal and a per-thread state word in a machine context, never from
// Go's thread-local storage, whether a signal is the translated
// application's or Go's.
//
// A signal is the application's when it is raised in its translated code
// (a fault in the code cache), or when it is an asynchronous signal that
// a running program has asked for (Listen). The handler then does no more
// than record it in the machine context (a context is memory laid out as
// the Off* and Area* constants say) and, when the thread was running
// translated code, sends the thread back to the dispatcher by rewriting
// the interrupted PC and stack pointer in the signal frame: the state at
// the signal, the siginfo, the registers and the vector state, is left in
// the context for Go code to translate back to the application's. Every
// other signal goes on to the handler that was installed before (Go's),
// with the same arguments, so that Go's own faults, preemption and
// profiling are Go's as before.
//
// The handlers run on the thread's alternate signal stack (SA_ONSTACK;
// the Go runtime gives every thread one), so that a fault of an
// application stack that has run out is still caught.
package sigtramp
