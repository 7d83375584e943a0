package vmm

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// The grid is vmcode under Windows rules (docs/ARCHITECTURE.md, sections 1 and 6;
// DynamoRIO issue #3570, its options D and E).
//
// Windows can neither map a file over a reservation nor release part of
// one, so a single 2 GiB reservation (linear) can hold no file view. The
// grid reserves vmcode instead as consecutive reservations of one slot
// size each (640 KiB by default: 3,277 of them for 2 GiB). To map a file
// of s bytes at a slot boundary it releases exactly the ceil(s/slot)
// slots the view needs, maps the view there, and re-reserves what of the
// last slot the view leaves (from the next granularity boundary after the
// view's end). Unmapping re-reserves the slots.
//
// Between a release and the map the addresses are free, and anything in
// the process may take them: under Wine, Wine's own glibc allocations do
// (docs/ARCHITECTURE.md, "Windows under Wine"). So that window is measured (GridStats), a map
// whose hole was taken is retried, and slots that someone else now owns
// are marked lost, never handed out or released again, and reported as a
// *SlotLostError so that the VMM can choose other slots. Placement goes
// low (from 4 GiB up, in 4 GiB steps), where Wine's allocations are not,
// and checks every slot it reserves.
//
// A grid of a size that is not a multiple of the slot size ends in a
// short slot: 2 GiB is 3,276 slots of 640 KiB and one of 512 KiB, 3,277
// reservations, and vmcode never grows past the size asked (which would
// break the reach guarantee). Slots are numbered from 0, as indexes: in
// aspacem each is a reservation owned by "grid slot K/N", K from 0 to
// N-1.
//
// Measured under Wine 8.0 (grid_windows_test.go, BenchmarkGridPlace): a
// Go test binary's own image sits at 0x1_4000_0000 (Go's default PE image
// base) and DLL images at 0x2_2828_0000 and 0x3_70f7_0000, so the first
// three candidates are skipped (one VirtualQuery each, about 1 us) and the
// grid lands at 0x4_0006_0000; the whole placement takes 7-40 ms. The
// release-to-map window of a 3-slot file averages 30-130 us, but on a
// loaded machine one preemption stretched it to 35 ms: it is bounded by
// nothing, which is why it is measured and a lost hole is retried.
//
// The grid uses only osmem, so it runs (and its tests run) on the
// simulator under Windows rules on every OS, and on real Windows or Wine.

// Grid defaults.
const (
	// DefaultGridSlotSize is the size of one grid slot: ten 64 KiB
	// allocation granules, DynamoRIO's proposal in #3570.
	DefaultGridSlotSize = 640 << 10
	// DefaultGridStart is the first base tried on 64-bit hosts: 4 GiB,
	// above what Wine's glibc and loader put low (docs/ARCHITECTURE.md, "Windows under Wine") and
	// far below the top-down allocations of Windows and Wine.
	DefaultGridStart uint64 = 1 << 32
	// DefaultGridStep separates successive bases tried: 4 GiB, so that a
	// 2 GiB grid never overlaps the previous candidate.
	DefaultGridStep uint64 = 4 << 30
	// DefaultGridAttempts bounds the number of bases tried.
	DefaultGridAttempts = 16
	// DefaultGridMapTries bounds how many times one mapFile releases its
	// slots and tries to map when something else takes the hole.
	DefaultGridMapTries = 3

	// gridRestoreTries bounds the tries of each call that puts back what
	// the grid released (re-reserving a slot, releasing a tail) before the
	// grid gives up on the slot. An ERROR_INVALID_ADDRESS where the
	// addresses look free (Wine's glibc case, or an injected fault) is
	// retried; one where something is there is final.
	gridRestoreTries = 3
)

// gridOptions configures newGrid. The zero value gives the defaults.
type gridOptions struct {
	// base, if not 0, is where the grid must start; only with fallback
	// does placement go on to the candidates from start.
	base     uintptr
	fallback bool
	// start is the first candidate base when base is 0 (or has failed,
	// with fallback); 0 selects DefaultGridStart (on 32-bit hosts, the
	// lowest granule of the OS's bounds).
	start uintptr
	// step separates candidates; 0 selects DefaultGridStep (on 32-bit
	// hosts, the grid's size).
	step uintptr
	// attempts bounds the candidates tried; 0 selects
	// DefaultGridAttempts.
	attempts int
	// mapTries bounds the tries of one mapFile whose hole is taken; 0
	// selects DefaultGridMapTries.
	mapTries int
	// now reads a monotonic clock for the statistics. nil selects
	// time.Since of a fixed origin, which is monotonic but, on Windows,
	// only as fine as the interrupt time Go's runtime reads (coarse under
	// Wine): on Windows pass QueryPerformanceCounter (see the Windows
	// test's gridQPC).
	now func() time.Duration
}

// gridEpoch is the origin of the default clock.
var gridEpoch = time.Now()

func gridMonotonic() time.Duration { return time.Since(gridEpoch) }

// GridAttempt is one candidate base tried by the grid's placement.
type GridAttempt struct {
	// Base is the candidate.
	Base uintptr
	// Reserved counts the slots reserved there before the attempt failed
	// (all of them for the attempt that succeeded).
	Reserved int
	// Time is how long the attempt took, releasing its slots included.
	Time time.Duration
	// Err is why the attempt failed; nil for the one that succeeded.
	Err error
}

func (a GridAttempt) String() string {
	if a.Err == nil {
		return fmt.Sprintf("%#x: placed %d slots in %v", a.Base, a.Reserved, a.Time)
	}
	return fmt.Sprintf("%#x: %v (after %d slots, %v)", a.Base, a.Err, a.Reserved, a.Time)
}

// GridStats is what the grid measured.
type GridStats struct {
	// Base, Size and SlotSize describe the grid; Slots = Size/SlotSize.
	Base, Size, SlotSize uintptr
	Slots                int
	// Attempts lists every candidate placement tried, in order; the last
	// one succeeded.
	Attempts []GridAttempt
	// PlaceTime is the whole placement's time.
	PlaceTime time.Duration
	// Maps counts successful mapFile calls; MapRetries the tries repeated
	// because the hole was taken (or the map failed with
	// ERROR_INVALID_ADDRESS).
	Maps, MapRetries int
	// WindowMax and WindowTotal measure, over the successful tries, the
	// time from the first slot's release to the view's successful map:
	// how long the addresses lay free. WindowTotal/Maps is the mean.
	WindowMax, WindowTotal time.Duration
	// Resets counts views unmapped and their slots re-reserved;
	// ResetWindowMax is the longest time from a view's unmap to its last
	// slot re-reserved.
	Resets         int
	ResetWindowMax time.Duration
	// Lost counts slots lost to someone else; Views the live views.
	Lost, Views int
}

// SlotLostError reports grid slots released by the grid that someone else
// took before the grid could map or re-reserve them. The grid owns nothing
// there any more and never will: it hands the slots out to no one and
// never releases them. The VMM should take [Addr, Addr+Size) out of its
// allocator for good and place the file elsewhere.
type SlotLostError struct {
	// Addr and Size span the lost slots (from the first lost slot's base
	// to the last one's end; slots between them may have been kept).
	Addr, Size uintptr
	// Slots are the indexes of the lost slots.
	Slots []int
	// Err is the failure that revealed the loss.
	Err error
}

func (e *SlotLostError) Error() string {
	return fmt.Sprintf("vmm: grid slots %v [%#x, +%#x) lost to another allocation: %v", e.Slots, e.Addr, e.Size, e.Err)
}

func (e *SlotLostError) Unwrap() error { return e.Err }

// GridPlaceError reports that no candidate base could hold the grid.
type GridPlaceError struct {
	Size, SlotSize uintptr
	Attempts       []GridAttempt
}

func (e *GridPlaceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vmm: no place for a grid of %#x bytes in slots of %#x after %d attempt(s)", e.Size, e.SlotSize, len(e.Attempts))
	for _, a := range e.Attempts {
		b.WriteString("; ")
		b.WriteString(a.String())
	}
	return b.String()
}

// Unwrap returns every attempt's error, so that errors.Is finds the
// classes (mem.ErrExists, ...) that made them fail.
func (e *GridPlaceError) Unwrap() []error {
	var out []error
	for _, a := range e.Attempts {
		if a.Err != nil {
			out = append(out, a.Err)
		}
	}
	return out
}

// gridState is what a grid slot holds.
type gridState uint8

const (
	// gridReserved: exactly one reservation of the grid's, the whole
	// slot. Some of its pages may be committed (grid.committed).
	gridReserved gridState = iota
	// gridInView: the slot is part of a view's run of slots (gridView):
	// covered from its base by the view if the view is mapped, and, in
	// the run's last slot, ending in the tail reservation if held.
	gridInView
	// gridHole: the grid released the slot and could not re-reserve it,
	// for a reason other than someone else holding it. The grid owns
	// nothing there; reset re-reserves it.
	gridHole
	// gridLost: someone else holds (part of) the slot. Final.
	gridLost
	// gridFree: given back to the OS by release. Final.
	gridFree
)

func (s gridState) String() string {
	switch s {
	case gridReserved:
		return "reserved"
	case gridInView:
		return "view"
	case gridHole:
		return "hole"
	case gridLost:
		return "lost"
	case gridFree:
		return "released"
	}
	return fmt.Sprintf("gridState(%d)", uint8(s))
}

// gridSlot is the grid's record of one slot: eight bytes, so that a 2 GiB
// grid's 3,277 slots take 26 KiB.
type gridSlot struct {
	state gridState
	// busy is set while an operation that changes the slot's state
	// (mapFile, reset of a view or a hole, release) runs on it.
	busy bool
	// pins counts the calls that change pages but not the slot's state
	// (commit, decommit, protect, reset's decommit) in flight on it.
	// Several may run on one slot: one slot may hold several VMM slots'
	// units.
	pins uint16
	// view is the index of the first slot of the slot's view run, for
	// gridInView.
	view int32
}

// gridView is a run of n slots released for one file view.
type gridView struct {
	// first and n are the run's slots: [first, first+n).
	first, n int
	// mapped says the view [base of first, +size) is mapped. It is false
	// only when reset unmapped the view but could not yet put the last
	// slot back (then n is 1).
	mapped bool
	size   uintptr
	// tail is where the tail reservation starts: the first granule
	// boundary after the view, inside the last slot, or the run's end if
	// the view fills it. tailHeld says the grid holds [tail, run end).
	tail     uintptr
	tailHeld bool
}

// The grid is a backing.
var _ backing = (*grid)(nil)

// grid is a backing made of consecutive slot reservations (see the comment
// at the top of this file).
//
// Invariants, with mu held: every slot is in exactly one state; a
// gridReserved slot is exactly one reservation of the OS; every gridInView
// slot's view is views[slot.view] and lies in [first, first+n) of it;
// committed bits are set only for pages of the grid's own reservations
// (gridReserved slots and held tails), and then exactly for the committed
// ones.
type grid struct {
	// os, base, size, slotSize, page, gran, n, now and mapTries are
	// immutable after newGrid.
	os                   mem.OS
	base, size, slotSize uintptr
	page, gran           uintptr
	n                    int
	now                  func() time.Duration
	mapTries             int

	// mu guards the fields below. It is never held across an OS call: an
	// operation checks and claims its slots (busy, pins) under mu, calls
	// the OS without it, and records the outcome under mu again. The VMM
	// guarantees one range is touched by one caller at a time; the claims
	// turn a caller that breaks that into a clear error.
	mu sync.Mutex
	// slots holds the state of every slot; len(slots) == n.
	slots []gridSlot
	// views holds the view runs by their first slot.
	views map[int]*gridView
	// committed has one bit per page of vmcode: set if the page is
	// committed in one of the grid's reservations.
	committed []uint64
	// stats is what Stats returns.
	stats GridStats
}

// newGrid reserves size bytes of vmcode as ceil(size/slotSize)
// consecutive reservations of slotSize bytes each, the last one shorter if
// size is not a multiple of slotSize (slotSize 0 selects
// DefaultGridSlotSize; both are multiples of the granularity).
//
// Placement tries candidate bases in turn: opts.base alone (or first, with
// opts.fallback), else opts.start and on in opts.step steps, at most
// opts.attempts of them. A candidate with anything mapped in its range is
// skipped without a call; otherwise the slots are reserved one by one
// with mem.Exact, and each is checked (Query must show exactly that
// reservation). On any failure the attempt's slots are released and the
// next candidate tried. The error of a failed placement is a
// *GridPlaceError naming every attempt.
func newGrid(o mem.OS, size, slotSize uintptr, opts gridOptions) (*grid, error) {
	gran := o.Granularity()
	if slotSize == 0 {
		slotSize = DefaultGridSlotSize
	}
	if gran == 0 || slotSize%gran != 0 {
		return nil, fmt.Errorf("vmm: grid slot size %#x is not a non-zero multiple of the granularity %#x", slotSize, gran)
	}
	if size == 0 || size%gran != 0 {
		return nil, fmt.Errorf("vmm: grid size %#x is not a non-zero multiple of the granularity %#x", size, gran)
	}
	if opts.base%gran != 0 {
		return nil, fmt.Errorf("vmm: grid base %#x not aligned to the granularity %#x", opts.base, gran)
	}
	page := o.PageSize()
	n := (size + slotSize - 1) / slotSize
	if uint64(n) > 1<<31-1 || page == 0 || uint64(size/page) > 1<<40 {
		return nil, fmt.Errorf("vmm: grid of %#x bytes in slots of %#x: too many slots or pages", size, slotSize)
	}
	g := &grid{
		os:       o,
		size:     size,
		slotSize: slotSize,
		page:     page,
		gran:     gran,
		n:        int(n),
		now:      opts.now,
		mapTries: opts.mapTries,
		views:    make(map[int]*gridView),
	}
	if g.now == nil {
		g.now = gridMonotonic
	}
	if g.mapTries <= 0 {
		g.mapTries = DefaultGridMapTries
	}
	pages := size / page
	g.committed = make([]uint64, (pages+63)/64)
	g.slots = make([]gridSlot, g.n)

	t0 := g.now()
	var attempts []GridAttempt
	cands := g.candidates(opts)
	if len(cands) == 0 {
		return nil, fmt.Errorf("vmm: no candidate base for a grid of %#x bytes from %#x in %#x steps fits the address space", size, opts.start, opts.step)
	}
	for _, c := range cands {
		a := g.place(c)
		attempts = append(attempts, a)
		if a.Err == nil {
			g.base = c
			break
		}
		if errors.Is(a.Err, errGridLeak) {
			// The OS would not take back a slot this attempt reserved:
			// stop rather than pile up more.
			break
		}
	}
	g.stats = GridStats{Size: size, SlotSize: slotSize, Slots: g.n, Attempts: attempts, PlaceTime: g.now() - t0}
	if g.base == 0 {
		return nil, &GridPlaceError{Size: size, SlotSize: slotSize, Attempts: attempts}
	}
	g.stats.Base = g.base
	return g, nil
}

// candidates lists the bases placement tries, in order: every one inside
// the OS's bounds and distinct; all but a requested base multiples of the
// slot size.
func (g *grid) candidates(opts gridOptions) []uintptr {
	lo, hi := g.os.Bounds()
	attempts := opts.attempts
	if attempts <= 0 {
		attempts = DefaultGridAttempts
	}
	var out []uintptr
	fits := func(c uint64) bool {
		return c >= uint64(lo) && c%uint64(g.gran) == 0 && c+uint64(g.size) <= uint64(hi) && c+uint64(g.size) > c
	}
	if opts.base != 0 {
		out = append(out, opts.base) // Refused by the OS if out of bounds: reported, not skipped.
		if !opts.fallback {
			return out
		}
	}
	start, step := uint64(opts.start), uint64(opts.step)
	if start == 0 {
		start = DefaultGridStart
		if bits.UintSize == 32 {
			start = uint64(lo)
		}
	}
	if step == 0 {
		step = DefaultGridStep
		if bits.UintSize == 32 {
			step = uint64(g.size)
		}
	}
	// Each candidate is rounded up to a multiple of the slot size (a
	// multiple of the granularity), so that slot boundaries are multiples
	// of fileAlign in absolute terms too and an allocator aligning
	// absolute addresses to fileAlign lands on them. 4 GiB becomes
	// 0x1_0004_0000 with 640 KiB slots.
	ss := uint64(g.slotSize)
	for c := start; len(out) < attempts && c+uint64(g.size) <= uint64(hi) && c >= start; c += step {
		a := (c + ss - 1) / ss * ss
		if fits(a) && uintptr(a) != opts.base {
			out = append(out, uintptr(a))
		}
		if step == 0 {
			break
		}
	}
	return out
}

// errGridLeak marks a placement attempt that could not release a slot it
// had reserved.
var errGridLeak = errors.New("a reserved slot could not be released")

// place tries to reserve the whole grid at base c. On failure it releases
// every slot it reserved, and the attempt's Err says why.
func (g *grid) place(c uintptr) (a GridAttempt) {
	t0 := g.now()
	a.Base = c
	defer func() { a.Time = g.now() - t0 }()
	// Anything already there dooms the attempt: skip it without a call.
	// (This is a hint: the slot-by-slot checks below are what count.)
	if at, used, err := g.inUse(c, g.size); err != nil {
		a.Err = err
		return a
	} else if used {
		a.Err = fmt.Errorf("%#x already in use: %w", at, mem.ErrExists)
		return a
	}
	for k := 0; k < g.n; k++ {
		addr, length := c+uintptr(k)*g.slotSize, g.slotLen(k)
		if _, err := g.os.Reserve(addr, length, mem.Exact); err != nil {
			a.Err = fmt.Errorf("slot %d: %w", k, err)
			break
		}
		a.Reserved++
		if err := g.checkSlot(addr, length); err != nil {
			a.Err = fmt.Errorf("slot %d: %w", k, err)
			break
		}
	}
	if a.Err == nil {
		return a
	}
	// Give back this attempt's slots, last first.
	for k := a.Reserved - 1; k >= 0; k-- {
		addr := c + uintptr(k)*g.slotSize
		var err error
		for try := 0; try < gridRestoreTries; try++ {
			if err = g.os.Release(addr, g.slotLen(k)); err == nil {
				break
			}
		}
		if err != nil {
			a.Err = fmt.Errorf("%w; and slot %d at %#x: %w: %w", a.Err, k, addr, errGridLeak, err)
			return a
		}
	}
	return a
}

// inUse reports whether anything is mapped in [addr, addr+size), and the
// first address in use, as far as one Query shows: the free run around
// addr must cover the range. (A Query of free space is one VirtualQuery;
// Regions would name every image in the way, milliseconds under Wine.)
func (g *grid) inUse(addr, size uintptr) (uintptr, bool, error) {
	r, err := g.os.Query(addr)
	switch {
	case err != nil:
		return 0, false, err
	case r.State != mem.StateFree:
		return addr, true, nil
	case r.End-addr < size:
		return r.End, true, nil
	}
	return 0, false, nil
}

// checkSlot checks that the OS shows [addr, addr+length) as exactly one
// reservation based at addr.
func (g *grid) checkSlot(addr, length uintptr) error {
	r, err := g.os.Query(addr)
	if err != nil {
		return fmt.Errorf("checking the reservation at %#x: %w", addr, err)
	}
	if r.Start != addr || r.End != addr+length || r.State != mem.StateReserved || r.AllocBase != addr || r.Type != mem.TypePrivate {
		return fmt.Errorf("reservation at %#x reads back as [%#x, %#x) %v %v based at %#x: %w",
			addr, r.Start, r.End, r.State, r.Type, r.AllocBase, mem.ErrExists)
	}
	return nil
}

func (g *grid) bounds() (uintptr, uintptr) { return g.base, g.size }

// fileAlign is the slot size: a file view starts on a slot boundary, and
// takes whole slots. Slot boundaries are base + k*slotSize; base is a
// multiple of slotSize unless gridOptions.base asked otherwise, so then
// they are multiples of fileAlign as absolute addresses too.
func (g *grid) fileAlign() uintptr { return g.slotSize }

// Stats returns a copy of what the grid measured.
func (g *grid) Stats() GridStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Attempts = append([]GridAttempt(nil), g.stats.Attempts...)
	s.Views = len(g.views)
	return s
}

// slotAddr returns slot k's base.
func (g *grid) slotAddr(k int) uintptr { return g.base + uintptr(k)*g.slotSize }

// slotOf returns the index of the slot holding addr.
//
// Preconditions: addr lies in the grid.
func (g *grid) slotOf(addr uintptr) int { return int((addr - g.base) / g.slotSize) }

// slotLen returns slot k's length: slotSize, except for a last slot cut
// short by a grid size that is not a multiple of it (2 GiB is 3,276 slots
// of 640 KiB and one of 512 KiB: vmcode never grows past the size asked,
// which would break the reach guarantee).
func (g *grid) slotLen(k int) uintptr { return min(g.slotSize, g.size-uintptr(k)*g.slotSize) }

// slotEnd returns the end of slot k.
func (g *grid) slotEnd(k int) uintptr { return g.slotAddr(k) + g.slotLen(k) }

// gridOwner is the aspacem owner of slot k of n: slots count from 0, like
// indexes, so that the last of 3,277 is "grid slot 3276/3277".
func gridOwner(k, n int) string { return fmt.Sprintf("grid slot %d/%d", k, n) }

// gridErr builds the error of a grid operation refused before any OS call
// (Code 0).
func gridErr(op string, addr, size uintptr, class error, format string, args ...any) error {
	return &mem.Error{Op: "grid " + op, Addr: addr, Size: size, Class: class, Detail: fmt.Sprintf(format, args...)}
}

// check validates [addr, addr+size) as a page-aligned part of the grid.
func (g *grid) check(op string, addr, size uintptr) error {
	if err := mem.CheckRange("grid "+op, addr, size, g.page); err != nil {
		return err
	}
	if addr < g.base || addr-g.base >= g.size || size > g.size-(addr-g.base) {
		return gridErr(op, addr, size, mem.ErrInvalid, "range leaves the grid [%#x, +%#x)", g.base, g.size)
	}
	return nil
}

// Page bitmap helpers. Page i is the i-th page of vmcode.

func (g *grid) pageIndex(addr uintptr) int { return int((addr - g.base) / g.page) }

// bitsLocked calls fn for each run of pages of [addr, end) whose
// committed bit equals set.
//
// Preconditions: g.mu is held; [addr, end) lies in the grid.
func (g *grid) runsLocked(addr, end uintptr, set bool, fn func(a, e uintptr)) {
	i, j := g.pageIndex(addr), g.pageIndex(end)
	for i < j {
		w := g.committed[i/64]
		if !set {
			w = ^w
		}
		if w>>(i%64) == 0 {
			// No page of the wanted kind in the rest of this word.
			i = (i/64 + 1) * 64
			continue
		}
		// Skip to the next page of the wanted kind.
		if i += bits.TrailingZeros64(w >> (i % 64)); i >= j {
			break
		}
		k := i
		for k < j && (g.committed[k/64]&(1<<(k%64)) != 0) == set {
			k++
		}
		fn(g.base+uintptr(i)*g.page, g.base+uintptr(k)*g.page)
		i = k
	}
}

// anyLocked reports whether any page of [addr, end) has its committed bit
// equal to set.
//
// Preconditions: g.mu is held; [addr, end) lies in the grid.
func (g *grid) anyLocked(addr, end uintptr, set bool) bool {
	found := false
	g.runsLocked(addr, end, set, func(a, e uintptr) { found = true })
	return found
}

// markLocked sets the committed bits of [addr, end) to set.
//
// Preconditions: g.mu is held; [addr, end) lies in the grid.
func (g *grid) markLocked(addr, end uintptr, set bool) {
	for i, j := g.pageIndex(addr), g.pageIndex(end); i < j; i++ {
		if set {
			g.committed[i/64] |= 1 << (i % 64)
		} else {
			g.committed[i/64] &^= 1 << (i % 64)
		}
	}
}

// gridPiece is the part of a range that lies in one allocation of the
// grid: a slot's reservation, a view's tail reservation, or (merged across
// its slots) a view.
type gridPiece struct {
	start, end uintptr
	view       bool
}

// piecesLocked splits [addr, addr+size) at the grid's allocation
// boundaries, since Windows operates within one allocation at a time. A
// range that touches anything the grid does not hold (a hole, a lost or
// released slot, the gap between a view's end and its tail) or a slot an
// operation is changing is refused.
//
// Preconditions: g.mu is held; the range passed check.
func (g *grid) piecesLocked(op string, addr, size uintptr) ([]gridPiece, error) {
	end := addr + size
	var out []gridPiece
	add := func(p gridPiece) {
		if n := len(out); n > 0 && p.view && out[n-1].view && out[n-1].end == p.start {
			out[n-1].end = p.end
			return
		}
		out = append(out, p)
	}
	for k := g.slotOf(addr); k < g.n && g.slotAddr(k) < end; k++ {
		s := &g.slots[k]
		s0, s1 := g.slotAddr(k), g.slotEnd(k)
		a, e := max(s0, addr), min(s1, end)
		if s.busy {
			return nil, gridErr(op, addr, size, mem.ErrNotMapped, "%s is being changed by another operation", gridOwner(k, g.n))
		}
		switch s.state {
		case gridReserved:
			add(gridPiece{start: a, end: e})
			continue
		case gridInView:
		default:
			return nil, gridErr(op, addr, size, mem.ErrNotMapped, "%s is %v", gridOwner(k, g.n), s.state)
		}
		v := g.views[int(s.view)]
		vbase := g.slotAddr(v.first)
		vend := vbase + v.size
		runEnd := g.slotEnd(v.first + v.n - 1)
		if v.mapped && a < vend {
			add(gridPiece{start: a, end: min(e, vend), view: true})
			a = min(e, vend)
		}
		if a < e && a < v.tail || a < e && !v.tailHeld {
			return nil, gridErr(op, addr, size, mem.ErrNotMapped, "[%#x, %#x) of %s is not held (view of %#x bytes at %#x, mapped %v; tail from %#x, held %v)",
				a, e, gridOwner(k, g.n), v.size, vbase, v.mapped, v.tail, v.tailHeld)
		}
		if a < e {
			add(gridPiece{start: a, end: min(e, runEnd)})
		}
	}
	return out, nil
}

// pinLocked pins the slots of [addr, end) for a call that changes pages.
//
// Preconditions: g.mu is held; the slots are not busy (piecesLocked).
func (g *grid) pinLocked(addr, end uintptr) error {
	k0, k1 := g.slotOf(addr), g.slotOf(end-1)
	for k := k0; k <= k1; k++ {
		if g.slots[k].pins == ^uint16(0) {
			return gridErr("pin", addr, end-addr, mem.ErrInvalid, "too many calls in flight on %s", gridOwner(k, g.n))
		}
	}
	for k := k0; k <= k1; k++ {
		g.slots[k].pins++
	}
	return nil
}

func (g *grid) unpin(addr, end uintptr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := g.slotOf(addr); k <= g.slotOf(end-1); k++ {
		g.slots[k].pins--
	}
}

// begin validates and splits a page operation's range and pins its slots.
// The caller calls g.unpin(addr, addr+size) when it returns nil.
func (g *grid) begin(op string, addr, size uintptr) ([]gridPiece, error) {
	if err := g.check(op, addr, size); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ps, err := g.piecesLocked(op, addr, size)
	if err != nil {
		return nil, err
	}
	if err := g.pinLocked(addr, addr+size); err != nil {
		return nil, err
	}
	return ps, nil
}

// beginReserved is begin for commit and decommit, which work on
// reservations only: a file view in the range is an error, and the range
// is unpinned again.
func (g *grid) beginReserved(op string, addr, size uintptr) ([]gridPiece, error) {
	ps, err := g.begin(op, addr, size)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.view {
			g.unpin(addr, addr+size)
			return nil, gridErr(op, addr, size, mem.ErrNotMapped, "[%#x, %#x) is a file view, not a reservation", p.start, p.end)
		}
	}
	return ps, nil
}

// commit commits [addr, addr+size) one allocation at a time. If a call
// fails, the pages the earlier calls newly committed are decommitted again
// (pages that were committed before keep the new protection, as
// mprotect's would), so that a failed commit leaves nothing new behind.
func (g *grid) commit(addr, size uintptr, prot mem.Prot) error {
	ps, err := g.beginReserved("commit", addr, size)
	if err != nil {
		return err
	}
	defer g.unpin(addr, addr+size)
	for i, p := range ps {
		if err := g.os.Commit(p.start, p.end-p.start, prot); err != nil {
			return errors.Join(err, g.undoCommit(ps[:i]))
		}
	}
	g.mu.Lock()
	g.markLocked(addr, addr+size, true)
	g.mu.Unlock()
	return nil
}

// undoCommit decommits the pages of ps that were not committed before,
// and records what it could not.
func (g *grid) undoCommit(ps []gridPiece) error {
	var runs [][2]uintptr
	g.mu.Lock()
	for _, p := range ps {
		g.runsLocked(p.start, p.end, false, func(a, e uintptr) { runs = append(runs, [2]uintptr{a, e}) })
	}
	g.mu.Unlock()
	var errs []error
	for _, r := range runs {
		var err error
		for try := 0; try < gridRestoreTries; try++ {
			if err = g.os.Decommit(r[0], r[1]-r[0]); err == nil {
				break
			}
		}
		if err != nil {
			g.mu.Lock()
			g.markLocked(r[0], r[1], true)
			g.mu.Unlock()
			errs = append(errs, fmt.Errorf("vmm: grid: undoing the commit of [%#x, %#x): %w", r[0], r[1], err))
		}
	}
	return errors.Join(errs...)
}

// decommit decommits [addr, addr+size) one allocation at a time, skipping
// allocations with nothing committed in the range. A failed call leaves
// the earlier allocations decommitted (their contents are gone: that
// cannot be undone); the grid's record says so.
func (g *grid) decommit(addr, size uintptr) error {
	ps, err := g.beginReserved("decommit", addr, size)
	if err != nil {
		return err
	}
	defer g.unpin(addr, addr+size)
	return g.decommitPieces(ps)
}

// decommitPieces decommits the reservation pieces of ps that hold
// committed pages.
//
// Preconditions: the pieces' slots are pinned or busy.
func (g *grid) decommitPieces(ps []gridPiece) error {
	for _, p := range ps {
		if p.view {
			continue
		}
		g.mu.Lock()
		held := g.anyLocked(p.start, p.end, true)
		g.mu.Unlock()
		if !held {
			continue
		}
		if err := g.os.Decommit(p.start, p.end-p.start); err != nil {
			return err
		}
		g.mu.Lock()
		g.markLocked(p.start, p.end, false)
		g.mu.Unlock()
	}
	return nil
}

// protect changes the protection of [addr, addr+size) one allocation at a
// time (a view is one allocation, whatever its slots). Every page in the
// grid's reservations must be committed: that is checked before any call,
// so that only a resource failure can stop it half way, which then leaves
// the earlier allocations with the new protection, as mprotect would.
func (g *grid) protect(addr, size uintptr, prot mem.Prot) error {
	ps, err := g.begin("protect", addr, size)
	if err != nil {
		return err
	}
	defer g.unpin(addr, addr+size)
	g.mu.Lock()
	for _, p := range ps {
		if !p.view && g.anyLocked(p.start, p.end, false) {
			g.mu.Unlock()
			return gridErr("protect", addr, size, mem.ErrNotMapped, "[%#x, %#x) holds reserved pages", p.start, p.end)
		}
	}
	g.mu.Unlock()
	for _, p := range ps {
		if err := g.os.Protect(p.start, p.end-p.start, prot); err != nil {
			return err
		}
	}
	return nil
}

// claimLocked marks slots [k0, k1) busy for an operation that changes
// their state.
//
// Preconditions: g.mu is held; no slot of [k0, k1) is busy or pinned.
func (g *grid) claimLocked(k0, k1 int) {
	for k := k0; k < k1; k++ {
		g.slots[k].busy = true
	}
}

// freeLocked reports why slots [k0, k1) cannot be claimed, or nil.
//
// Preconditions: g.mu is held.
func (g *grid) claimableLocked(op string, k0, k1 int) error {
	for k := k0; k < k1; k++ {
		if s := &g.slots[k]; s.busy || s.pins != 0 {
			return gridErr(op, g.slotAddr(k0), g.slotEnd(k1-1)-g.slotAddr(k0), mem.ErrNotMapped, "%s is being changed by another operation", gridOwner(k, g.n))
		}
	}
	return nil
}

// setLocked records slot k's new state and ends the claim on it.
//
// Preconditions: g.mu is held.
func (g *grid) setLocked(k int, st gridState) {
	s := &g.slots[k]
	if st == gridLost && s.state != gridLost {
		g.stats.Lost++
	}
	s.state, s.busy, s.view = st, false, 0
}

// mapFile maps size bytes of obj from off at addr, which must be a slot
// boundary: it releases the ceil(size/slotSize) slots there (each whole),
// maps the view with mem.Exact, and re-reserves the rest of the last
// slot from the first granule boundary after the view.
//
// The slots must be wholly reserved, with nothing committed: a file slot
// owns its grid slots whole (fileAlign). If the map fails because
// something took part of the hole (ErrExists), the slots are re-reserved
// and the map tried again, up to mapTries times. On every error path the
// released slots are re-reserved; slots that someone else now holds are
// marked lost and reported as a *SlotLostError.
func (g *grid) mapFile(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot) error {
	const op = "map"
	if err := g.check(op, addr, size); err != nil {
		return err
	}
	if (addr-g.base)%g.slotSize != 0 {
		return gridErr(op, addr, size, mem.ErrInvalid, "view not at a slot boundary (slots of %#x bytes from %#x)", g.slotSize, g.base)
	}
	first := g.slotOf(addr)
	n := int((size + g.slotSize - 1) / g.slotSize)
	runEnd := g.slotEnd(first + n - 1)
	end, _ := mem.AlignUp(addr+size, g.gran) // inside vmcode: no overflow
	tail := min(end, runEnd)

	g.mu.Lock()
	if err := g.claimableLocked(op, first, first+n); err != nil {
		g.mu.Unlock()
		return err
	}
	for k := first; k < first+n; k++ {
		if st := g.slots[k].state; st != gridReserved {
			g.mu.Unlock()
			return gridErr(op, addr, size, mem.ErrNotMapped, "%s is %v, not reserved", gridOwner(k, g.n), st)
		}
	}
	if g.anyLocked(addr, runEnd, true) {
		g.mu.Unlock()
		return gridErr(op, addr, size, mem.ErrNotMapped, "slots [%#x, %#x) hold committed pages", addr, runEnd)
	}
	g.claimLocked(first, first+n)
	g.mu.Unlock()

	var mapErr error
	for try := 0; ; try++ {
		if try > 0 {
			g.mu.Lock()
			g.stats.MapRetries++
			g.mu.Unlock()
		}
		var t0 time.Duration
		released := 0
		var relErr error
		for ; released < n; released++ {
			if relErr = g.os.Release(g.slotAddr(first+released), g.slotLen(first+released)); relErr != nil {
				break
			}
			if released == 0 {
				t0 = g.now()
			}
		}
		if relErr != nil {
			return errors.Join(relErr, g.restore(first, released, first+n, false))
		}
		_, mapErr = g.os.MapObject(obj, off, addr, size, prot, mem.Exact)
		if mapErr == nil {
			w := g.now() - t0
			g.mu.Lock()
			g.stats.Maps++
			g.stats.WindowTotal += w
			g.stats.WindowMax = max(g.stats.WindowMax, w)
			g.mu.Unlock()
			break
		}
		last := try+1 >= g.mapTries || !errors.Is(mapErr, mem.ErrExists)
		if err := g.restore(first, n, first+n, !last); err != nil {
			// restore ended the claim whatever keep said.
			return errors.Join(mapErr, err)
		}
		if !errors.Is(mapErr, mem.ErrExists) {
			// Not a conflict: no reason to think another try would do
			// better.
			return mapErr
		}
		if last {
			return fmt.Errorf("vmm: grid: mapping %#x bytes at %#x: the addresses were in use on each of %d tries: %w", size, addr, g.mapTries, mapErr)
		}
	}

	// Re-reserve the rest of the last slot.
	v := &gridView{first: first, n: n, mapped: true, size: size, tail: tail}
	if tail < runEnd {
		if _, err := g.reserveExact(tail, runEnd-tail); err != nil {
			// Give the whole run back to reservation, and report.
			return errors.Join(fmt.Errorf("vmm: grid: re-reserving the tail [%#x, %#x) of a view: %w", tail, runEnd, err), g.undoView(v))
		}
		v.tailHeld = true
	}
	g.mu.Lock()
	g.views[first] = v
	for k := first; k < first+n; k++ {
		g.slots[k] = gridSlot{state: gridInView, view: int32(first)}
	}
	g.mu.Unlock()
	return nil
}

// undoView unmaps a view whose tail could not be re-reserved and
// re-reserves its slots. If the unmap fails the view stays recorded, with
// its tail not held, for reset to finish.
//
// Preconditions: the run's slots are claimed; v is not in g.views.
func (g *grid) undoView(v *gridView) error {
	vbase := g.slotAddr(v.first)
	var err error
	for try := 0; try < gridRestoreTries; try++ {
		if err = g.os.Unmap(vbase, v.size); err == nil {
			break
		}
	}
	if err != nil {
		g.mu.Lock()
		g.views[v.first] = v
		for k := v.first; k < v.first+v.n; k++ {
			g.slots[k] = gridSlot{state: gridInView, view: int32(v.first)}
		}
		g.mu.Unlock()
		return fmt.Errorf("vmm: grid: unmapping the view at %#x after its tail was lost: %w", vbase, err)
	}
	return g.restore(v.first, v.n, v.first+v.n, false)
}

// restore re-reserves slots [first, first+released), which the grid
// released (the rest of [first, upTo) it did not get to release: they are
// still reserved), records each slot's outcome and, unless keep, ends the
// claim on [first, upTo). It returns a *SlotLostError for the slots
// someone else now holds and an error for those it could not re-reserve
// otherwise; the claim on those always ends.
//
// Preconditions: slots [first, upTo) are claimed.
func (g *grid) restore(first, released, upTo int, keep bool) error {
	sts := make([]gridState, released)
	errs := make([]error, released)
	for i := range released {
		sts[i], errs[i] = g.reserveExact(g.slotAddr(first+i), g.slotLen(first+i))
	}
	var lost []int
	var lostErr error
	var other []error
	g.mu.Lock()
	for k := first; k < upTo; k++ {
		st := gridReserved
		if i := k - first; i < released {
			st = sts[i]
		}
		g.setLocked(k, st)
		switch st {
		case gridLost:
			lost = append(lost, k)
			lostErr = errs[k-first]
		case gridHole:
			other = append(other, fmt.Errorf("vmm: grid: %s left unreserved: %w", gridOwner(k, g.n), errs[k-first]))
		}
	}
	if keep && len(lost) == 0 && len(other) == 0 {
		g.claimLocked(first, upTo)
	}
	g.mu.Unlock()
	if len(lost) > 0 {
		a := g.slotAddr(lost[0])
		other = append(other, &SlotLostError{Addr: a, Size: g.slotEnd(lost[len(lost)-1]) - a, Slots: lost, Err: lostErr})
	}
	return errors.Join(other...)
}

// reserveExact reserves [addr, addr+size), which the grid released, again.
// It tries up to gridRestoreTries times while the failure is no proof
// that someone else holds the range, and returns gridReserved, gridLost
// (the OS says the range is in use and Query shows something there, or
// every try said so: under Wine, VirtualQuery may call free what
// VirtualAlloc refuses) or gridHole (any other failure).
func (g *grid) reserveExact(addr, size uintptr) (gridState, error) {
	var err error
	for try := 0; try < gridRestoreTries; try++ {
		if _, err = g.os.Reserve(addr, size, mem.Exact); err == nil {
			return gridReserved, nil
		}
		if _, used, qerr := g.inUse(addr, size); used && qerr == nil && errors.Is(err, mem.ErrExists) {
			return gridLost, err
		}
	}
	if errors.Is(err, mem.ErrExists) {
		return gridLost, err
	}
	return gridHole, err
}

// reset turns [addr, addr+size) back into whole-slot reservations: views
// in it are unmapped (each whole, from its base: the range must hold
// every view run it touches whole) and their slots re-reserved; committed
// pages are decommitted; slots left unreserved by an earlier failure are
// re-reserved. Lost slots are skipped. Everything that can be done is
// done; a failure leaves the grid's record true, and reset may be called
// again.
func (g *grid) reset(addr, size uintptr) error {
	const op = "reset"
	if err := g.check(op, addr, size); err != nil {
		return err
	}
	end := addr + size
	k0, k1 := g.slotOf(addr), g.slotOf(end-1)+1

	g.mu.Lock()
	var views []*gridView
	var holes []int
	var pieces []gridPiece
	for k := k0; k < k1; k++ {
		s := &g.slots[k]
		if s.busy || (s.state != gridReserved && s.pins != 0) || s.pins == ^uint16(0) {
			g.mu.Unlock()
			return gridErr(op, addr, size, mem.ErrNotMapped, "%s is being changed by another operation", gridOwner(k, g.n))
		}
		switch s.state {
		case gridReserved:
			pieces = append(pieces, gridPiece{start: max(addr, g.slotAddr(k)), end: min(end, g.slotEnd(k))})
		case gridInView:
			v := g.views[int(s.view)]
			if k != v.first && k != k0 {
				continue // Taken at its first slot.
			}
			if vb, ve := g.slotAddr(v.first), g.slotEnd(v.first+v.n-1); vb < addr || ve > end {
				g.mu.Unlock()
				return gridErr(op, addr, size, mem.ErrInvalid, "the range holds only part of the view run [%#x, %#x)", vb, ve)
			}
			views = append(views, v)
		case gridHole:
			holes = append(holes, k)
		case gridFree:
			g.mu.Unlock()
			return gridErr(op, addr, size, mem.ErrNotMapped, "%s was released", gridOwner(k, g.n))
		}
	}
	for _, p := range pieces {
		g.slots[g.slotOf(p.start)].pins++
	}
	for _, v := range views {
		g.claimLocked(v.first, v.first+v.n)
	}
	for _, k := range holes {
		g.claimLocked(k, k+1)
	}
	g.mu.Unlock()

	var errs []error
	if len(pieces) > 0 {
		err := g.decommitPieces(pieces)
		g.mu.Lock()
		for _, p := range pieces {
			g.slots[g.slotOf(p.start)].pins--
		}
		g.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, v := range views {
		if err := g.resetView(v); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range holes {
		if err := g.restore(k, 1, k+1, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resetView unmaps v (if mapped) and re-reserves its slots: those before
// the last at once, then the last one after releasing its tail
// reservation. A failure leaves v recorded as far as it got, for a later
// reset or release.
//
// Preconditions: v's slots are claimed.
func (g *grid) resetView(v *gridView) error {
	vbase := g.slotAddr(v.first)
	if v.mapped {
		var err error
		for try := 0; try < gridRestoreTries; try++ {
			if err = g.os.Unmap(vbase, v.size); err == nil {
				break
			}
		}
		if err != nil {
			g.unclaimRun(v)
			return fmt.Errorf("vmm: grid: unmapping the view at %#x: %w", vbase, err)
		}
		g.mu.Lock()
		v.mapped = false
		g.mu.Unlock()
	}
	t0 := g.now()
	defer g.noteReset(t0)
	// Everything of the run but the tail is a hole now: the slots before
	// the last go back at once; the record shrinks to the last slot.
	var errs []error
	first, last := v.first, v.first+v.n-1
	if last > first {
		g.mu.Lock()
		for k := first; k < last; k++ {
			g.slots[k].state = gridHole
		}
		delete(g.views, first)
		v.first, v.n = last, 1
		g.views[last] = v
		g.slots[last].view = int32(last)
		g.mu.Unlock()
		if err := g.restore(first, last-first, last, false); err != nil {
			errs = append(errs, err)
		}
	}
	if v.tailHeld {
		runEnd := g.slotEnd(last)
		var err error
		for try := 0; try < gridRestoreTries; try++ {
			if err = g.os.Release(v.tail, runEnd-v.tail); err == nil {
				break
			}
		}
		if err != nil {
			g.unclaimRun(v)
			return errors.Join(append(errs, fmt.Errorf("vmm: grid: releasing the tail [%#x, %#x) of a view: %w", v.tail, runEnd, err))...)
		}
		g.mu.Lock()
		v.tailHeld = false
		g.markLocked(v.tail, runEnd, false)
		g.mu.Unlock()
	}
	g.mu.Lock()
	delete(g.views, last)
	g.slots[last].state = gridHole
	g.mu.Unlock()
	if err := g.restore(last, 1, last+1, false); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unclaimRun ends the claim on a view run that stays recorded.
func (g *grid) unclaimRun(v *gridView) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := v.first; k < v.first+v.n; k++ {
		g.slots[k].busy = false
	}
}

func (g *grid) noteReset(t0 time.Duration) {
	w := g.now() - t0
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.Resets++
	g.stats.ResetWindowMax = max(g.stats.ResetWindowMax, w)
}

// reserved returns the aspacem segments of [addr, addr+size): one
// reservation per grid slot (clipped to the range), owned by
// "grid slot K/N", so that the maps dump shows every slot; for a view
// run's last slot, its held tail only; free space for slots the grid does
// not hold (lost, released, holes).
func (g *grid) reserved(addr, size uintptr) []aspacem.Segment {
	if g.check("reserved", addr, size) != nil {
		return nil
	}
	end := addr + size
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []aspacem.Segment
	for k := g.slotOf(addr); k < g.n && g.slotAddr(k) < end; k++ {
		s0 := g.slotAddr(k)
		a, e := max(s0, addr), min(g.slotEnd(k), end)
		seg := aspacem.Segment{Start: a, End: e, Kind: aspacem.KindReservation, Owner: gridOwner(k, g.n)}
		switch s := &g.slots[k]; s.state {
		case gridReserved:
		case gridInView:
			v := g.views[int(s.view)]
			if k != v.first+v.n-1 || !v.tailHeld || max(a, v.tail) >= e {
				continue
			}
			seg.Start = max(a, v.tail)
		default:
			seg = aspacem.Segment{Start: a, End: e, Kind: aspacem.KindFree}
		}
		out = append(out, seg)
	}
	return out
}

// afterMap returns what aspacem must record, besides the view itself,
// after mapFile(obj, off, addr, size, prot) succeeded: the free gap from
// the view's end to the next granule boundary, where the tail
// reservation starts. The OS shows it free and no one can allocate there
// (allocations start on granule boundaries), but the slot's aspacem
// record would still say reserved. Empty when the view ends on a granule.
func (g *grid) afterMap(addr, size uintptr) []aspacem.Segment {
	end := addr + size
	if gap, ok := mem.AlignUp(end, g.gran); ok && gap > end {
		return []aspacem.Segment{{Start: end, End: gap, Kind: aspacem.KindFree}}
	}
	return nil
}

// lostIn returns the ranges of [addr, addr+size) in lost slots, in
// address order: address space the grid will never hold again, which the
// VMM must keep out of its allocator when it takes a slot back.
func (g *grid) lostIn(addr, size uintptr) []mem.Range {
	if g.check("lost", addr, size) != nil {
		return nil
	}
	end := addr + size
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []mem.Range
	for k := g.slotOf(addr); k < g.n && g.slotAddr(k) < end; k++ {
		if g.slots[k].state != gridLost {
			continue
		}
		a, e := max(g.slotAddr(k), addr), min(g.slotEnd(k), end)
		if n := len(out); n > 0 && out[n-1].End == a {
			out[n-1].End = e
		} else {
			out = append(out, mem.Range{Start: a, End: e})
		}
	}
	return out
}

// release gives every allocation of the grid back to the OS: views
// unmapped, tails and slots released. Lost slots are not the grid's and
// are left alone. It goes on past a failed call, so that as little as
// possible stays behind; what it could not give back stays recorded (so
// the grid's record is still the truth) and a later call finishes the
// job. It refuses to run while another operation is in flight.
func (g *grid) release() error {
	g.mu.Lock()
	if err := g.claimableLocked("release", 0, g.n); err != nil {
		g.mu.Unlock()
		return err
	}
	g.claimLocked(0, g.n)
	views := make([]*gridView, 0, len(g.views))
	for _, v := range g.views {
		views = append(views, v)
	}
	g.mu.Unlock()

	var errs []error
	note := func(err error) {
		if len(errs) < 8 {
			errs = append(errs, err)
		}
	}
	for _, v := range views {
		vbase := g.slotAddr(v.first)
		runEnd := g.slotEnd(v.first + v.n - 1)
		if v.mapped {
			if err := g.os.Unmap(vbase, v.size); err != nil {
				note(err)
				continue
			}
			g.mu.Lock()
			v.mapped = false
			g.mu.Unlock()
		}
		if v.tailHeld {
			if err := g.os.Release(v.tail, runEnd-v.tail); err != nil {
				note(err)
				continue
			}
			g.mu.Lock()
			v.tailHeld = false
			g.markLocked(v.tail, runEnd, false)
			g.mu.Unlock()
		}
		g.mu.Lock()
		delete(g.views, v.first)
		for k := v.first; k < v.first+v.n; k++ {
			g.setLocked(k, gridFree)
		}
		g.mu.Unlock()
	}
	for k := 0; k < g.n; k++ {
		g.mu.Lock()
		st := g.slots[k].state
		g.mu.Unlock()
		switch st {
		case gridReserved:
			addr := g.slotAddr(k)
			if err := g.os.Release(addr, g.slotLen(k)); err != nil {
				note(err)
				continue
			}
			g.mu.Lock()
			g.markLocked(addr, g.slotEnd(k), false)
			g.setLocked(k, gridFree)
			g.mu.Unlock()
		case gridHole:
			g.mu.Lock()
			g.setLocked(k, gridFree)
			g.mu.Unlock()
		}
	}
	g.mu.Lock()
	for k := range g.slots {
		g.slots[k].busy = false
	}
	g.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("vmm: releasing the grid: %w", errors.Join(errs...))
	}
	return nil
}

// gridAlloc is one allocation the grid holds: a reservation or a view.
type gridAlloc struct {
	start, end uintptr
	view       bool
}

// allocs returns every allocation the grid holds, in address order: what
// the OS must show in the grid's range (with the committed pages of
// committedRuns), and nothing else. Tests compare it with the OS; a VMM
// can use it to resynchronise aspacem after a failure.
func (g *grid) allocs() []gridAlloc {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []gridAlloc
	for k := 0; k < g.n; k++ {
		s := &g.slots[k]
		switch s.state {
		case gridReserved:
			out = append(out, gridAlloc{start: g.slotAddr(k), end: g.slotEnd(k)})
		case gridInView:
			v := g.views[int(s.view)]
			if v.first != k {
				continue
			}
			runEnd := g.slotEnd(v.first + v.n - 1)
			if v.mapped {
				out = append(out, gridAlloc{start: g.slotAddr(k), end: g.slotAddr(k) + v.size, view: true})
			}
			if v.tailHeld {
				out = append(out, gridAlloc{start: v.tail, end: runEnd})
			}
		}
	}
	return out
}

// committedRuns returns the runs of committed pages of the grid's
// reservations in [lo, hi), in address order.
func (g *grid) committedRuns(lo, hi uintptr) [][2]uintptr {
	lo, hi = max(lo, g.base), min(hi, g.base+g.size)
	var out [][2]uintptr
	if lo >= hi {
		return out
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.runsLocked(lo, hi, true, func(a, e uintptr) { out = append(out, [2]uintptr{a, e}) })
	return out
}

// slotState returns slot k's state (for tests and diagnostics).
func (g *grid) slotState(k int) gridState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.slots[k].state
}

// Grid returns what vmcode's grid measured (its base, slot size and count,
// the placement attempts, the view and reset counters), and ok true, when
// vmcode is a grid (Windows rules, with or without W^X); ok is false for
// linear vmcode.
func (v *VMM) Grid() (st GridStats, ok bool) {
	switch b := v.back.(type) {
	case *grid:
		return b.Stats(), true
	case *gridDual:
		return b.g.Stats(), true
	}
	return GridStats{}, false
}
