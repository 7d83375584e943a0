package clients

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/privload"
)

// This file gives native clients the modules' functions and function
// wrapping. The client cannot call Go, so Module.Symbol and Lookup
// cannot be asked at its will: each module's symbol tables go to it
// whole, as sorted arrays the header's rv_module_symbol and
// rv_module_lookup search, and the functions module_load wraps come back
// as records in a table (rv_wrap), as a block event's insertions do.

// cSymbol is struct rv_symbol.
type cSymbol struct {
	name  uintptr `c:"name"`
	start uint64  `c:"start"`
	end   uint64  `c:"end"`
}

// cWrap is struct rv_wrap.
type cWrap struct {
	fn   uint64  `c:"func"`
	pre  uintptr `c:"pre"`
	post uintptr `c:"post"`
}

// cWrapTable is struct rv_wrap_table.
type cWrapTable struct {
	n        uint32  `c:"n"`
	cap      uint32  `c:"cap"`
	error    int32   `c:"error"`
	reserved int32   `c:"reserved"`
	wraps    uintptr `c:"wraps"`
}

// cWrapCall is struct rv_wrapcall.
type cWrapCall struct {
	thread   uintptr   `c:"thread"`
	fn       uint64    `c:"func"`
	retaddr  uint64    `c:"retaddr"`
	args     [6]uint64 `c:"args"`
	retval   uint64    `c:"retval"`
	data     uintptr   `c:"data"`
	skip     int32     `c:"skip"`
	unwound  int32     `c:"unwound"`
	post     int32     `c:"post"`
	reserved int32     `c:"reserved"`
}

// wrapErrors are the reasons rv_wrap records in rv_wrap_table.error, by
// value (enum rv_block_error's).
var wrapErrors = [...]string{
	1: "more wraps than the table has room for",
	3: "a wrap with neither a pre nor a post hook",
	5: "a wrap of function 0 (NULL)",
}

// wrapsExtra is the room module_load has for wraps beyond one per
// function of the module (the header promises it).
const wrapsExtra = 64

// nmodule is a module as a native client has it: its struct rv_module
// and what that points to, kept from module_load to module_unload (the
// client may keep the pointer that long).
type nmodule struct {
	c cModule
	// path is the path's C string; strs every name's, one after
	// another; syms and names the arrays of struct rv_symbol.
	path, strs  []byte
	syms, names []cSymbol
}

// newNModule makes mod's nmodule, reading its symbol tables.
func newNModule(mod *jit.Module) *nmodule {
	nm := &nmodule{path: append([]byte(mod.Path), 0)}
	fns := mod.Functions()
	byName := mod.Names()
	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	// Byte order: what rv_strcmp's binary search needs.
	slices.Sort(names)
	// Each name once, its offset known before the pointers are taken
	// (strs does not move after).
	off := make(map[string]int, len(names))
	size := 0
	for _, f := range fns {
		if _, ok := off[f.Name]; !ok {
			off[f.Name] = size
			size += len(f.Name) + 1
		}
	}
	for _, name := range names {
		if _, ok := off[name]; !ok {
			off[name] = size
			size += len(name) + 1
		}
	}
	nm.strs = make([]byte, size)
	for name, o := range off {
		copy(nm.strs[o:], name)
	}
	str := func(name string) uintptr { return uintptr(unsafe.Pointer(&nm.strs[off[name]])) }
	nm.syms = make([]cSymbol, len(fns))
	for i, f := range fns {
		nm.syms[i] = cSymbol{name: str(f.Name), start: uint64(f.Start), end: uint64(f.End)}
	}
	nm.names = make([]cSymbol, len(names))
	for i, name := range names {
		nm.names[i] = cSymbol{name: str(name), start: uint64(byName[name])}
	}
	nm.c = cModule{path: uintptr(unsafe.Pointer(&nm.path[0])), base: uint64(mod.Base), end: uint64(mod.End),
		nsyms: uint32(len(nm.syms)), nnames: uint32(len(nm.names))}
	if len(nm.syms) > 0 {
		nm.c.syms = uintptr(unsafe.Pointer(&nm.syms[0]))
	}
	if len(nm.names) > 0 {
		nm.c.names = uintptr(unsafe.Pointer(&nm.names[0]))
	}
	return nm
}

// moduleOf returns mod's nmodule, nil for nil or a module the client
// was not told of. A block event keeps it while the client reads it: a
// thread may unload the module meanwhile, and only Go's reference keeps
// the struct.
func (n *native) moduleOf(mod *jit.Module) *nmodule {
	if mod == nil {
		return nil
	}
	n.modMu.Lock()
	defer n.modMu.Unlock()
	return n.mods[mod]
}

// moduleLoad makes mod's struct, gives it to the client's module_load
// with the wrap table, and wraps what the client recorded there.
func (n *native) moduleLoad(mod *jit.Module) {
	nm := newNModule(mod)
	n.modMu.Lock()
	if n.mods == nil {
		n.mods = make(map[*jit.Module]*nmodule)
	}
	n.mods[mod] = nm
	n.modMu.Unlock()
	if n.ev.modLoad == 0 {
		return
	}
	n.wrapMu.Lock()
	defer n.wrapMu.Unlock()
	room := len(nm.syms) + wrapsExtra
	if cap(n.wrapRoom) < room {
		n.wrapRoom = make([]cWrap, room)
	}
	n.wrapRoom = n.wrapRoom[:room]
	n.wrapTab = cWrapTable{cap: uint32(room), wraps: uintptr(unsafe.Pointer(&n.wrapRoom[0]))}
	nm.c.wraps = uintptr(unsafe.Pointer(&n.wrapTab))
	n.call(n.modLoad, unsafe.Pointer(&nm.c))
	// The table is the event's: the client may keep the module's
	// struct, not it.
	nm.c.wraps = 0
	ws, err := n.checkWraps(mod.Path, &n.wrapTab, n.wrapRoom)
	if err != nil {
		n.fail(err)
		n.wrapFailed.Store(true)
		return
	}
	for _, w := range ws {
		pre, post := n.hooks(w)
		n.jc.Wrap(uintptr(w.fn), pre, post)
	}
}

// moduleUnload gives the client's module_unload mod's struct, which
// then goes.
func (n *native) moduleUnload(mod *jit.Module) {
	n.modMu.Lock()
	nm := n.mods[mod]
	delete(n.mods, mod)
	n.modMu.Unlock()
	if n.ev.modUnload == 0 {
		return
	}
	if nm == nil {
		// Told of before the client followed modules: it cannot
		// be, but the client is owed a struct.
		nm = newNModule(mod)
	}
	n.call(n.modUnload, unsafe.Pointer(&nm.c))
}

// checkWraps returns the wraps module_load recorded in t (room its
// records), each checked: what the client wrote is untrusted, and none
// is wrapped unless all pass. FuzzNativeWraps fuzzes it.
func (n *native) checkWraps(path string, t *cWrapTable, room []cWrap) ([]cWrap, error) {
	if e := t.error; e != 0 {
		why := fmt.Sprintf("error %d", e)
		if e > 0 && int(e) < len(wrapErrors) && wrapErrors[e] != "" {
			why = wrapErrors[e]
		}
		return nil, fmt.Errorf("clients: %s: module %s: a wrap failed: %s", n.name, path, why)
	}
	if t.n > uint32(len(room)) {
		return nil, fmt.Errorf("clients: %s: module %s: %d wraps, in room for %d", n.name, path, t.n, len(room))
	}
	ws := room[:t.n]
	for _, w := range ws {
		if w.fn == 0 {
			return nil, fmt.Errorf("clients: %s: module %s: a wrap of function 0", n.name, path)
		}
		if w.pre == 0 && w.post == 0 {
			return nil, fmt.Errorf("clients: %s: module %s: a wrap of %#x with neither hook", n.name, path, w.fn)
		}
		for _, h := range []struct {
			addr uintptr
			what string
		}{{w.pre, "pre"}, {w.post, "post"}} {
			if h.addr != 0 && !n.inImage(h.addr, 1) {
				return nil, fmt.Errorf("clients: %s: module %s: the %s hook %#x of the wrap of %#x is not in the client's image %s",
					n.name, path, h.what, h.addr, w.fn, n.imageText())
			}
		}
	}
	return slices.Clone(ws), nil
}

// wrapData is what a wrapped call's pre hook keeps for its post hook:
// the arguments the function got and the client's data.
type wrapData struct {
	args [6]uint64
	data uintptr
}

// hooks returns the jit's hooks of the wrap w, which call the client's.
// The pre hook runs even when the client has none but a post hook: it
// keeps the arguments, which the post hook gets.
//
// Preconditions: w passed checkWraps.
func (n *native) hooks(w cWrap) (pre, post func(*jit.WrapCall)) {
	var preFn, postFn privload.Func
	if w.pre != 0 {
		preFn = privload.FuncAt(w.pre, n.name+".wrap-pre")
	}
	if w.post != 0 {
		postFn = privload.FuncAt(w.post, n.name+".wrap-post")
	}
	pre = func(call *jit.WrapCall) {
		nt := n.thread(call.Thread)
		wc := &nt.wc
		*wc = cWrapCall{thread: uintptr(unsafe.Pointer(&nt.t)), fn: uint64(call.Func), retaddr: uint64(call.ReturnAddress())}
		for i := range wc.args {
			wc.args[i] = uint64(call.Arg(i))
		}
		got := wc.args
		if w.pre != 0 {
			n.call(preFn, unsafe.Pointer(wc))
		}
		if wc.skip != 0 {
			call.Skip(uintptr(wc.retval))
			return
		}
		for i, a := range wc.args {
			if a != got[i] {
				call.SetArg(i, uintptr(a))
			}
		}
		if w.post != 0 {
			call.Data = &wrapData{args: wc.args, data: wc.data}
		}
	}
	if w.post == 0 {
		return pre, nil
	}
	post = func(call *jit.WrapCall) {
		nt := n.thread(call.Thread)
		wc := &nt.wc
		*wc = cWrapCall{thread: uintptr(unsafe.Pointer(&nt.t)), fn: uint64(call.Func), retaddr: uint64(call.ReturnAddress()), post: 1}
		if d, ok := call.Data.(*wrapData); ok {
			wc.args, wc.data = d.args, d.data
		}
		unwound := call.Unwound()
		if unwound {
			wc.unwound = 1
		} else {
			wc.retval = uint64(call.ReturnValue())
		}
		ret := wc.retval
		n.call(postFn, unsafe.Pointer(wc))
		// An unwound call's rax is the code's now, not a result.
		if !unwound && wc.retval != ret {
			call.SetReturnValue(uintptr(wc.retval))
		}
	}
	return pre, post
}
