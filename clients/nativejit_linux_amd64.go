package clients

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit"
)

// This file turns a native client's insertion records into package
// jit's calls. The jit's Block.AddCell, Block.CleanCall and Block.Fail
// are being written: until a Block has them, an add goes to a jit
// Counter of the cell's own whose count is added to the cell before the
// client's exit event (the client's thread_exit sees the cell without
// it), a clean call fails the translation, and so does a failed block
// (with AddCounter's message, not the client's).

// cellAdder, cleanCaller and failer are the jit.Block methods this file
// uses when the Block has them.
type (
	cellAdder interface {
		AddCell(i int, cell uintptr, n int64, locked bool)
	}
	failer interface{ Fail(err error) }
)

// addCell inserts before instruction i of b an add of n to the 64-bit
// cell, locked or not.
//
// Preconditions: cell is an aligned word of the client's image, n fits
// in 32 bits, 0 <= i < b.Len().
func (n *native) addCell(b *jit.Block, i int, cell uintptr, add int64, locked bool) error {
	if a, ok := any(b).(cellAdder); ok {
		a.AddCell(i, cell, add, locked)
		return nil
	}
	b.AddCounter(i, n.fallback.counter(cell, locked), add)
	return nil
}

// cleanCall inserts before instruction i of b a call of fn with args.
func (n *native) cleanCall(b *jit.Block, i int, fn uintptr, args []cArg) error {
	return fmt.Errorf("clients: %s: block %#x: clean calls need jit.Block.CleanCall, which this reachvm lacks", n.name, b.PC())
}

// failBlock fails the translation of b with err.
func failBlock(b *jit.Block, err error) {
	if f, ok := any(b).(failer); ok {
		f.Fail(err)
		return
	}
	b.AddCounter(b.Len(), nil, 0)
}

// cellFallback counts a client's cells in jit Counters, one per cell,
// where the jit cannot add to the cells themselves.
type cellFallback struct {
	// mu guards cells, which threads' block events fill at once.
	mu    sync.Mutex
	cells map[uintptr]*fallbackCell
}

// fallbackCell is a cell's counter and what of its count the cell has.
type fallbackCell struct {
	c     *jit.Counter
	added uint64
}

// counter returns the counter of cell: a Shared one if its adds are
// locked, else a PerThread one.
func (f *cellFallback) counter(cell uintptr, locked bool) *jit.Counter {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cells == nil {
		f.cells = make(map[uintptr]*fallbackCell)
	}
	fc := f.cells[cell]
	if fc == nil {
		scope := jit.PerThread
		if locked {
			scope = jit.Shared
		}
		fc = &fallbackCell{c: jit.NewCounter(scope)}
		f.cells[cell] = fc
	}
	return fc.c
}

// flush adds to each cell what its counter counted since the last flush.
func (f *cellFallback) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cell, fc := range f.cells {
		v := fc.c.Value()
		atomic.AddUint64((*uint64)(rawmem.Ptr(cell)), v-fc.added)
		fc.added = v
	}
}
