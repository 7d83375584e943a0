// Package rawsig takes a signal's real default action on the calling
// thread: it sets the signal's disposition to SIG_DFL with a raw
// rt_sigaction (os/signal cannot: Go keeps its own handlers for SIGSEGV,
// SIGBUS and the other synchronous signals, and never gives them up),
// unblocks it and sends it to the thread with tgkill. reachvm uses it to
// end or stop its own process the way the kernel would have ended or
// stopped the native application: the parent then sees the same signal
// in the wait status, and a core is dumped where the native run would
// dump one.
//
// It exists on linux/amd64 only.
package rawsig
