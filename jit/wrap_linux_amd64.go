package jit

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// Function wrapping (DynamoRIO's drwrap): a pre hook when a function is
// entered, with its arguments, and a post hook when it returns, with its
// result, both in Go on the calling thread.
//
// The translator ends the code before a wrapped function's first
// instruction with an exit (exitWrap) that is never linked: the
// dispatcher runs the pre hook, then replaces the return address on the
// application's stack with the machine's wrap-return address, an address
// of reachvm's that is not code, and enters the cache again just past the
// exit, in the same fragment (nothing that could delete it runs in
// between). The function's ret goes to the wrap-return address through
// an indirect-branch lookup that misses; the dispatcher then pops the
// thread's wrap stack, runs the post hook and goes on at the real return
// address. A tail call out of the function returns through the same
// slot, so its post hook sees the final result; a longjmp past the
// function leaves its entry on the wrap stack, and the next wrapped call
// or return through the wrap-return address finds it stale (its stack
// pointer at or below the current one): its post hook runs then, with
// Unwound set.
//
// The replaced return address is visible to the function itself (a
// backtrace taken inside it ends at the wrap-return address).

// WrapCall is one call of a wrapped function, as its hooks see it.
type WrapCall struct {
	// Thread is the calling thread.
	Thread *Thread
	// Func is the wrapped function's address.
	Func uintptr
	// Data is the hooks' own: what the pre hook leaves here the post
	// hook of the same call finds.
	Data any

	m *Machine
	// sp is the stack pointer at the call's entry (its return
	// address's slot); ret the return address.
	sp, ret uintptr
	// post is the post hook, nil for none.
	post func(*WrapCall)
	// unwound: the post hook runs for a frame a longjmp left.
	unwound bool
	// skip and skipValue: the pre hook skipped the function.
	skip      bool
	skipValue uintptr
}

// Arg returns integer argument i (0 to 5, in rdi, rsi, rdx, rcx, r8, r9)
// of the call: in the pre hook, as the function receives it.
func (w *WrapCall) Arg(i int) uintptr {
	if i < 0 || i >= len(argRegs) {
		return 0
	}
	return uintptr(w.m.reg(argRegs[i]))
}

// SetArg changes integer argument i (0 to 5) of the call, in the pre
// hook.
func (w *WrapCall) SetArg(i int, v uintptr) {
	if i >= 0 && i < len(argRegs) {
		w.m.setReg(argRegs[i], uint64(v))
	}
}

// ReturnValue returns the call's integer result (rax), in the post hook.
func (w *WrapCall) ReturnValue() uintptr { return uintptr(w.m.reg(amd64.RAX)) }

// SetReturnValue changes the call's integer result, in the post hook.
func (w *WrapCall) SetReturnValue(v uintptr) { w.m.setReg(amd64.RAX, uint64(v)) }

// ReturnAddress returns where the call returns to.
func (w *WrapCall) ReturnAddress() uintptr { return w.ret }

// Unwound reports, in the post hook, that the function did not return:
// its frame was left (a longjmp, an exception) and ReturnValue means
// nothing.
func (w *WrapCall) Unwound() bool { return w.unwound }

// Skip, in the pre hook, skips the function: it returns v at once to
// its caller, and the post hook is not called.
func (w *WrapCall) Skip(v uintptr) { w.skip, w.skipValue = true, v }

// wrapTable is a client's wrapped functions.
type wrapTable struct {
	mu    sync.RWMutex
	hooks map[uintptr]wrapHooks
}

type wrapHooks struct{ pre, post func(*WrapCall) }

// Wrap wraps the function at fn: pre (if not nil) runs at each call's
// entry, post (if not nil) at its return. Wrap a function before its
// code is first translated (from ModuleLoad, where Module.Lookup finds
// it): code translated before does not call the hooks. The hooks run on
// the calling thread, in Go, as the client's events do.
func (c *Client) Wrap(fn uintptr, pre, post func(*WrapCall)) {
	w := c.wraps.Load()
	if w == nil {
		c.wraps.CompareAndSwap(nil, &wrapTable{hooks: make(map[uintptr]wrapHooks)})
		w = c.wraps.Load()
	}
	w.mu.Lock()
	w.hooks[fn] = wrapHooks{pre, post}
	w.mu.Unlock()
}

// wrapped reports whether the client wraps the function at pc.
func (c *Client) wrapped(pc uintptr) (wrapHooks, bool) {
	w := c.wraps.Load()
	if w == nil {
		return wrapHooks{}, false
	}
	w.mu.RLock()
	h, ok := w.hooks[pc]
	w.mu.RUnlock()
	return h, ok
}

// wrapRet is the machine's wrap-return address: in its context, never
// code.
func (m *Machine) wrapRet() uintptr { return m.ctx + 8 }

// wrapEnter runs the pre hook of the wrapped function at pc, the
// application's state in the context, and reports whether the
// application goes on into the function (else it returns to its caller,
// skipped, and the dispatcher goes on at ret).
func (m *Machine) wrapEnter(pc uintptr) (into bool, ret uintptr, err error) {
	h, ok := m.opts.Client.wrapped(pc)
	if !ok {
		return true, 0, nil
	}
	sp := uintptr(m.reg(amd64.RSP))
	var b [8]byte
	if !copyIn(sp, b[:]) {
		return false, 0, fmt.Errorf("jit: the wrapped function at %#x entered with an unreadable stack (rsp %#x)", pc, sp)
	}
	back := uintptr(binary.LittleEndian.Uint64(b[:]))
	// Calls whose frames are gone: deeper than this one, or in this
	// very return slot unless this is a tail call from them (which
	// finds the wrap-return address there).
	for len(m.wraps) > 0 {
		o := m.wraps[len(m.wraps)-1]
		if o.sp > sp || o.sp == sp && back == m.wrapRet() {
			break
		}
		m.wraps = m.wraps[:len(m.wraps)-1]
		o.unwound = true
		o.post(o)
	}
	w := &WrapCall{Thread: m.clientThread(), Func: pc, m: m, sp: sp, ret: back, post: h.post}
	if h.pre != nil {
		h.pre(w)
	}
	if w.skip {
		m.setReg(amd64.RAX, uint64(w.skipValue))
		m.setReg(amd64.RSP, uint64(sp+8))
		return false, w.ret, nil
	}
	if h.post == nil {
		return true, 0, nil
	}
	binary.LittleEndian.PutUint64(b[:], uint64(m.wrapRet()))
	if !m.copyOut(sp, b[:]) {
		return false, 0, fmt.Errorf("jit: the wrapped function at %#x: its return address at %#x cannot be written", pc, sp)
	}
	m.wraps = append(m.wraps, w)
	return true, 0, nil
}

// wrapReturn runs the post hooks of the calls that returned to the
// wrap-return address, the stack pointer just past the return address,
// and of those a longjmp left below them; it returns the real return
// address.
func (m *Machine) wrapReturn() (uintptr, error) {
	sp := uintptr(m.reg(amd64.RSP)) - 8
	for len(m.wraps) > 0 {
		w := m.wraps[len(m.wraps)-1]
		if w.sp > sp {
			// An outer call's: this return is not one of ours.
			break
		}
		m.wraps = m.wraps[:len(m.wraps)-1]
		if w.sp < sp {
			w.unwound = true
			w.post(w)
			continue
		}
		w.post(w)
		if w.ret != m.wrapRet() {
			return w.ret, nil
		}
		// A wrapped function tail-called from another: the outer
		// call, whose return slot this was first, returns too.
	}
	return 0, fmt.Errorf("jit: a return to the wrap-return address with no wrapped call of the stack pointer %#x", sp+8)
}

// copyOut writes b into the application's memory at a, as a system
// call's result would be.
func (m *Machine) copyOut(a uintptr, b []byte) bool {
	if t := m.th; t != nil {
		return t.copyOut(a, b)
	}
	if a == 0 {
		return false
	}
	return userAccess(func() { userWrite(a, b) })
}
