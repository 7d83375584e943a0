package jit

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Scope says who shares a Counter's memory.
type Scope uint8

const (
	// PerThread counters have a cell for each thread, which its code
	// updates with a plain add: no bus lock, no sharing of cache lines
	// between threads. Value sums them.
	PerThread Scope = iota
	// Shared counters have one cell for a program's threads, updated
	// with a locked add.
	Shared
)

// Counter is a 64-bit count that inserted code adds to
// (Block.AddCounter): DynamoRIO's drx_insert_counter_update. Its cells
// lie in vmcode, beside the code that updates them, which names them
// RIP-relatively: an update is one instruction where the flags are dead.
type Counter struct {
	scope Scope
	// mu guards cells and folded.
	mu sync.Mutex
	// cells are the counter's live cells, by the arena holding each
	// (a machine's for PerThread, an address space's for Shared).
	cells map[*cellArena]uintptr
	// folded is the sum of the cells that were folded: their threads
	// ended, or their arenas were released.
	folded uint64
}

// NewCounter returns a counter of the given scope, at zero.
func NewCounter(scope Scope) *Counter {
	return &Counter{scope: scope, cells: make(map[*cellArena]uintptr)}
}

// Value returns the counter's value: every cell's, and those of threads
// that ended. It may be read at any time; while code updating it runs,
// it is a value the counter had at some point during the call.
func (c *Counter) Value() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.folded
	for _, p := range c.cells {
		v += loadCell(p)
	}
	return v
}

// loadCell reads a cell that other threads' code may be adding to.
func loadCell(p uintptr) uint64 {
	return atomic.LoadUint64((*uint64)(rawmem.Ptr(p)))
}

// cellArenaSlot is the size of each vmcode slot an arena takes: 8,192
// cells.
const cellArenaSlot = 64 << 10

// cellArena holds counter cells in read-write vmcode slots: a machine's
// PerThread cells, or an address space's Shared ones.
type cellArena struct {
	// v is where slots come from. Immutable.
	v *vmm.VMM
	// mu guards the fields below: an address space's arena is filled by
	// its machines' translations, which run concurrently.
	mu sync.Mutex
	// slots are the arena's slots; next and end bound the free part of
	// the last one.
	slots     []*vmm.Slot
	next, end uintptr
	// cells maps each counter to its cell here.
	cells map[*Counter]uintptr
}

func newCellArena(v *vmm.VMM) *cellArena {
	return &cellArena{v: v, cells: make(map[*Counter]uintptr)}
}

// cell returns c's cell in the arena, making it (zero) the first time.
func (a *cellArena) cell(c *Counter) (uintptr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.cells[c]; ok {
		return p, nil
	}
	if a.next == a.end {
		s, err := a.v.ReserveSlot(cellArenaSlot, "jit counters")
		if err != nil {
			return 0, fmt.Errorf("jit: reserving counter cells: %w", err)
		}
		if err := s.Commit(s.Base(), s.Size(), mem.ProtRW); err != nil {
			return 0, fmt.Errorf("jit: committing counter cells: %w", err)
		}
		a.slots = append(a.slots, s)
		a.next, a.end = s.Base(), s.Base()+s.Size()
	}
	p := a.next
	a.next += 8
	a.cells[c] = p
	c.mu.Lock()
	c.cells[a] = p
	c.mu.Unlock()
	return p, nil
}

// value returns the value of c's cell here, 0 if it has none.
func (a *cellArena) value(c *Counter) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.cells[c]; ok {
		return loadCell(p)
	}
	return 0
}

// fold adds every cell's value to its counter's total and zeroes the
// cell; with release, it also drops the cells from their counters (the
// arena's memory is about to go).
//
// Preconditions: no code updating the arena's cells runs (the machine is
// idle, or every machine of the address space is).
func (a *cellArena) fold(release bool) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for c, p := range a.cells {
		c.mu.Lock()
		cell := (*uint64)(rawmem.Ptr(p))
		c.folded += atomic.SwapUint64(cell, 0)
		if release {
			delete(c.cells, a)
		}
		c.mu.Unlock()
	}
	if release {
		clear(a.cells)
	}
}

// release folds the cells and gives the slots back.
func (a *cellArena) release() error {
	if a == nil {
		return nil
	}
	a.fold(true)
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	for _, s := range a.slots {
		if e := s.Release(); e != nil && err == nil {
			err = e
		}
	}
	a.slots, a.next, a.end = nil, 0, 0
	return err
}
