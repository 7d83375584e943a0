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
	// mu guards the fields below.
	mu sync.Mutex
	// arena and cell are the counter's first live cell and the arena
	// holding it (a machine's for PerThread, an address space's for
	// Shared), or nil and 0; more are its cells in further arenas (the
	// other threads' machines), by arena, made at the second. A client
	// that counts per block makes a counter a block, nearly all of them
	// updated by one thread: a map each cost python3's start 12 MB of
	// heap for 92,000 blocks.
	arena *cellArena
	cell  uintptr
	more  map[*cellArena]uintptr
	// folded is the sum of the cells that were folded: their threads
	// ended, or their arenas were released.
	folded uint64
}

// NewCounter returns a counter of the given scope, at zero.
func NewCounter(scope Scope) *Counter {
	return &Counter{scope: scope}
}

// Value returns the counter's value: every cell's, and those of threads
// that ended. It may be read at any time; while code updating it runs,
// it is a value the counter had at some point during the call.
func (c *Counter) Value() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.folded
	if c.arena != nil {
		v += loadCell(c.cell)
	}
	for _, p := range c.more {
		v += loadCell(p)
	}
	return v
}

// cellInLocked returns c's cell in arena a, if it has one.
//
// Preconditions: c.mu is held.
func (c *Counter) cellInLocked(a *cellArena) (uintptr, bool) {
	if c.arena == a {
		return c.cell, true
	}
	p, ok := c.more[a]
	return p, ok
}

// addCellLocked records p as c's cell in a.
//
// Preconditions: c.mu is held; c has no cell in a.
func (c *Counter) addCellLocked(a *cellArena, p uintptr) {
	if c.arena == nil {
		c.arena, c.cell = a, p
		return
	}
	if c.more == nil {
		c.more = make(map[*cellArena]uintptr)
	}
	c.more[a] = p
}

// dropCellLocked forgets c's cell in a.
//
// Preconditions: c.mu is held.
func (c *Counter) dropCellLocked(a *cellArena) {
	if c.arena == a {
		c.arena, c.cell = nil, 0
		return
	}
	delete(c.more, a)
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
	// its machines' translations, which run concurrently. Lock order:
	// mu, then a counter's mu.
	mu sync.Mutex
	// slots are the arena's slots; next and end bound the free part of
	// the last one.
	slots     []*vmm.Slot
	next, end uintptr
	// counters are the counters with a cell here, each once; the
	// counter keeps the cell's address.
	counters []*Counter
}

func newCellArena(v *vmm.VMM) *cellArena {
	return &cellArena{v: v}
}

// cell returns c's cell in the arena, making it (zero) the first time.
func (a *cellArena) cell(c *Counter) (uintptr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c.mu.Lock()
	p, ok := c.cellInLocked(a)
	c.mu.Unlock()
	if ok {
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
	p = a.next
	a.next += 8
	a.counters = append(a.counters, c)
	c.mu.Lock()
	c.addCellLocked(a, p)
	c.mu.Unlock()
	return p, nil
}

// value returns the value of c's cell here, 0 if it has none.
func (a *cellArena) value(c *Counter) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.cellInLocked(a); ok {
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
	for _, c := range a.counters {
		c.mu.Lock()
		if p, ok := c.cellInLocked(a); ok {
			c.folded += atomic.SwapUint64((*uint64)(rawmem.Ptr(p)), 0)
			if release {
				c.dropCellLocked(a)
			}
		}
		c.mu.Unlock()
	}
	if release {
		a.counters = nil
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
