package clients

import (
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/jit"
)

// wrapTool is the state of the wrap sample: the C library's allocation
// functions wrapped (jit.Client.Wrap), each call's size and result
// recorded, the blocks never freed reported as leaks.
type wrapTool struct {
	mu sync.Mutex
	// live are the blocks allocated and not freed, by address: their
	// sizes.
	live map[uintptr]uint64
	// The calls' counts and the bytes asked for.
	mallocs, callocs, reallocs, frees, failed uint64
	bytes                                     uint64
	// sizes counts the allocations by size class: the power of two at
	// or above the size (0 for 0).
	sizes map[uint64]uint64
}

// newWrap wraps malloc, calloc, realloc and free of the program's C
// library, as DynamoRIO's drwrap samples do: a pre hook takes the size,
// a post hook the block, and the report lists the blocks the program
// never freed (the leaks, the largest first).
func newWrap(args []string) (*Tool, error) {
	if err := noArgs("wrap", args); err != nil {
		return nil, err
	}
	w := &wrapTool{live: map[uintptr]uint64{}, sizes: map[uint64]uint64{}}
	c := &jit.Client{}
	c.ModuleLoad = func(mod *jit.Module) {
		if !strings.HasPrefix(filepath.Base(mod.Path), "libc.so") {
			return
		}
		wrap := func(name string, pre, post func(*jit.WrapCall)) {
			if fn, ok := mod.Lookup(name); ok {
				c.Wrap(fn, pre, post)
			}
		}
		wrap("malloc", func(call *jit.WrapCall) { call.Data = uint64(call.Arg(0)) }, w.allocated(&w.mallocs))
		wrap("calloc", func(call *jit.WrapCall) {
			call.Data = uint64(call.Arg(0)) * uint64(call.Arg(1))
		}, w.allocated(&w.callocs))
		wrap("realloc", func(call *jit.WrapCall) {
			call.Data = [2]uint64{uint64(call.Arg(0)), uint64(call.Arg(1))}
		}, w.reallocated)
		wrap("free", w.freed, nil)
	}
	return &Tool{Name: "wrap", Client: c, Report: w.report}, nil
}

// allocated returns the post hook of an allocation counted in n, whose
// size the pre hook left in Data.
func (w *wrapTool) allocated(n *uint64) func(*jit.WrapCall) {
	return func(call *jit.WrapCall) {
		if call.Unwound() {
			return
		}
		size := call.Data.(uint64)
		p := call.ReturnValue()
		w.mu.Lock()
		defer w.mu.Unlock()
		*n++
		w.add(p, size)
	}
}

// add records a block of size at p (nil: a failed allocation).
//
// Preconditions: w.mu is held.
func (w *wrapTool) add(p uintptr, size uint64) {
	if p == 0 {
		w.failed++
		return
	}
	w.live[p] = size
	w.bytes += size
	w.sizes[sizeClass(size)]++
}

func (w *wrapTool) reallocated(call *jit.WrapCall) {
	if call.Unwound() {
		return
	}
	a := call.Data.([2]uint64)
	p := call.ReturnValue()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reallocs++
	if p == 0 && a[1] != 0 {
		w.failed++ // the old block stays
		return
	}
	delete(w.live, uintptr(a[0]))
	if a[1] != 0 {
		w.add(p, a[1])
	}
}

func (w *wrapTool) freed(call *jit.WrapCall) {
	p := call.Arg(0)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.frees++
	delete(w.live, p)
}

// sizeClass returns the power of two at or above size.
func sizeClass(size uint64) uint64 {
	c := uint64(1)
	for c < size && c != 0 {
		c <<= 1
	}
	if size == 0 {
		return 0
	}
	return c
}

// wrapLeak is a block never freed.
type wrapLeak struct {
	Addr string `json:"addr"`
	Size uint64 `json:"size"`
}

// wrapTop is how many leaks the report lists.
const wrapTop = 10

func (w *wrapTool) report(out io.Writer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var leaks []wrapLeak
	var leaked uint64
	for p, size := range w.live {
		leaks = append(leaks, wrapLeak{Addr: fmt.Sprintf("%#x", p), Size: size})
		leaked += size
	}
	slices.SortFunc(leaks, func(a, b wrapLeak) int {
		return cmp.Or(cmp.Compare(b.Size, a.Size), strings.Compare(a.Addr, b.Addr))
	})
	n := len(leaks)
	leaks = leaks[:min(n, wrapTop)]
	type class struct {
		UpTo  uint64 `json:"up_to"`
		Count uint64 `json:"count"`
	}
	var classes []class
	for c, k := range w.sizes {
		classes = append(classes, class{c, k})
	}
	slices.SortFunc(classes, func(a, b class) int { return cmp.Compare(a.UpTo, b.UpTo) })
	return writeJSON(out, struct {
		Client         string     `json:"client"`
		Mallocs        uint64     `json:"mallocs"`
		Callocs        uint64     `json:"callocs"`
		Reallocs       uint64     `json:"reallocs"`
		Frees          uint64     `json:"frees"`
		Failed         uint64     `json:"failed"`
		BytesAllocated uint64     `json:"bytes_allocated"`
		LeakedBlocks   int        `json:"leaked_blocks"`
		LeakedBytes    uint64     `json:"leaked_bytes"`
		Sizes          []class    `json:"sizes"`
		TopLeaks       []wrapLeak `json:"top_leaks"`
	}{"wrap", w.mallocs, w.callocs, w.reallocs, w.frees, w.failed, w.bytes, n, leaked, classes, leaks})
}
