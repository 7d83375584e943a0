package vmm

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"sync"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// WXMode says whether vmcode is W^X (docs/ARCHITECTURE.md invariant 4): no page of it
// writable and executable at once, ever.
type WXMode uint8

const (
	// WXAuto, the zero value, makes vmcode W^X wherever the backend allows
	// it: under Linux rules a memfd viewed twice (dual), under Windows
	// rules the grid with a pagefile-backed section viewed twice
	// (gridDual), on the native backends and on the simulator alike, so
	// that fault injection covers both. Where the OS refuses (a kernel
	// that will not execute a memfd, a section that cannot be created),
	// vmcode stays single-mapped and Placement.Fallbacks says why. WXEnv
	// overrides it.
	WXAuto WXMode = iota
	// WXOn requires W^X: New fails where it cannot be had. Under Windows
	// rules it is the grid with two views of one pagefile-backed section
	// (gridDual): code units then take whole grid slots.
	WXOn
	// WXOff maps vmcode once; code is written read-write and then made
	// read-execute (vmcode.Unit.Seal). It is the baseline of the W^X
	// benchmark.
	WXOff
)

func (m WXMode) String() string {
	switch m {
	case WXAuto:
		return "auto"
	case WXOn:
		return "on"
	case WXOff:
		return "off"
	}
	return fmt.Sprintf("WXMode(%d)", uint8(m))
}

// Set parses "on", "off", "auto" or a boolean (strconv.ParseBool), so that
// WXMode is a flag.Value: --wx is WXOn, --wx=false WXOff, no flag WXAuto.
func (m *WXMode) Set(s string) error {
	switch s {
	case "auto":
		*m = WXAuto
		return nil
	case "on":
		*m = WXOn
		return nil
	case "off":
		*m = WXOff
		return nil
	}
	on, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("W^X mode %q: want on, off, auto or a boolean", s)
	}
	*m = WXOff
	if on {
		*m = WXOn
	}
	return nil
}

// IsBoolFlag lets --wx stand alone on a command line.
func (m *WXMode) IsBoolFlag() bool { return true }

// WXEnv names the environment variable that decides what WXAuto means:
// unset, "" or "auto" as documented there; "off" or a false value
// (strconv.ParseBool: "0", "false", ...) WXOff; "on" or a true one WXOn.
// Explicit modes ignore it. It lets a whole test suite run in either mode
// (REACHVM_WX=off go test ./...) and a user turn W^X off without a
// rebuild.
const WXEnv = "REACHVM_WX"

// resolveWX turns WXAuto into what WXEnv says, if it says anything.
func resolveWX(mode WXMode) (WXMode, error) {
	if mode == WXAuto {
		if env := os.Getenv(WXEnv); env != "" {
			if err := mode.Set(env); err != nil {
				return mode, fmt.Errorf("%s: %w", WXEnv, err)
			}
		}
	}
	return mode, nil
}

// newBacking returns lin itself, or lin made W^X (newDual), as mode and,
// for WXAuto, the rules of lin's backend say. A WXAuto that the kernel
// refuses is reported in p's fallbacks.
//
// Preconditions: mode went through resolveWX.
func newBacking(lin *linear, space *aspacem.Map, mode WXMode, p *Placement) (backing, error) {
	switch mode {
	case WXAuto:
		if lin.os.Rules() != mem.RulesLinux {
			return lin, nil
		}
	case WXOn:
		return newDual(lin, space)
	case WXOff:
		return lin, nil
	default:
		return nil, fmt.Errorf("unknown W^X mode %v", mode)
	}
	d, err := newDual(lin, space)
	if errors.Is(err, ErrWXUnavailable) {
		// The platform does not allow it after all: vmcode stays single
		// (VMM.WX says so), reserved again where the refused view was.
		base, size := lin.bounds()
		if _, rerr := lin.os.Reserve(base, size, mem.Fixed); rerr != nil {
			return nil, fmt.Errorf("%w (and re-reserving vmcode: %v)", err, rerr)
		}
		p.Fallbacks = append(p.Fallbacks, fmt.Sprintf("no W^X: %v", err))
		return lin, nil
	}
	return d, err
}

// ErrWriteExec is returned, under W^X, for a request that would make a page
// writable and executable at once.
var ErrWriteExec = errors.New("vmm: W^X: a page cannot be writable and executable at once")

// ErrWXUnavailable is returned by New for WXOn when the kernel refuses to
// map the shared object executable (vm.memfd_noexec=2, a security module).
// WXAuto then leaves W^X off.
var ErrWXUnavailable = errors.New("vmm: W^X unavailable: the kernel refuses executable views of a memfd")

// ErrWXWindows was returned by New for WXOn under Windows rules, before
// the grid had dual views (gridDual). New no longer returns it; it is kept
// so that callers that test for it still build.
//
// Deprecated: W^X under Windows rules is the grid with two views of one
// pagefile-backed section (see gridDual).
var ErrWXWindows = errors.New("vmm: W^X under Windows rules needs the grid (dual views of a pagefile-backed section cannot replace part of one reservation); use WXOff or WXAuto")

// Names of the dual mapping.
const (
	// OwnerVMCodeAlias annotates the writable view in aspacem.
	OwnerVMCodeAlias = "vmcode rw alias"
	// SharedName is the name of the shared memory object behind vmcode
	// under W^X; /proc/self/maps shows its views as "/memfd:reachvm-vmcode
	// (deleted)".
	SharedName = "reachvm-vmcode"
)

// dual is vmcode made W^X, DynamoRIO's -satisfy_w_xor_x and QEMU's split-wx:
// one shared memory object (a memfd) of vmcode's size, mapped twice. The
// executable view is vmcode itself, at the reachable address; the writable
// view (the alias) lies wherever the OS put it, at a constant offset
// rw-base for the region's life. Emitted code is encoded for its executable
// address and written at the writable one; neither view is ever writable
// and executable at once.
//
// Every page of vmcode is in one of these states:
//
//   - reserved: both views PROT_NONE, and the object has no page there (a
//     hole), so a later commit reads zeros;
//   - freed: reserved as far as anyone can tell (both views PROT_NONE,
//     recorded as reserved), but the object still holds the page a
//     released slot left; its bit in dual.freed is set. A commit zeroes it
//     through the alias, Trim (or more than freedMax bytes of such pages)
//     punches it out;
//   - committed: the executable view has the slot's protection (never
//     write with execute), the alias is read-write;
//   - a private file view (privload) over the executable view, the alias
//     PROT_NONE.
//
// Freed pages exist because a code cache frees and reuses units all the
// time: punching each unit's pages out on release (madvise) and faulting
// fresh ones in on reuse, once through each view, made such churn about a
// third slower than the single mapping (jit's BenchmarkUnitChurn); kept,
// they cost that memory only (at most freedMax), both views keep their
// page tables over them (mprotect does not drop them), and reuse is a
// memclr and two mprotects.
//
// The executable view's segments are recorded by Slot, as for linear; the
// alias's by dual itself (owner OwnerVMCodeAlias), so that SyncCheck covers
// both and the rest of the VMM never sees the alias. Each operation calls
// the OS on the alias first and on the executable view last, recording
// every alias change as soon as it is made: a failure part way leaves the
// executable view unchanged and aspacem exact.
type dual struct {
	// sharedAlias is the shared object and its writable view.
	sharedAlias
	// lin is the executable view's range; lin, name and discard are
	// immutable after newDual.
	lin *linear
	// name is the object's name as /proc/self/maps shows it, less the
	// " (deleted)" suffix: what the segments of both views record.
	name string
	// discard frees the object's pages under [addr, addr+size) of the
	// alias, which must be mapped read-write: madvise(MADV_REMOVE) on the
	// native backend, nil on the simulator, which models no memory (and
	// whose addresses must not be touched).
	discard func(addr, size uintptr) error

	// mu serializes every change of the alias over pages that are or may
	// become freed (commit of freed pages, drop, the release of a
	// committed slot, Trim), so that Trim never works on a range another
	// operation is changing. It guards freed and nfreed.
	mu sync.Mutex
	// freed has one bit per page of vmcode, set for freed pages.
	freed []uint64
	// nfreed counts the set bits.
	nfreed uintptr

	// Progress of release, so that a failed release can be called again
	// and no operation touches a view that is gone (the OS may have handed
	// its range to someone else). Read by operations under the VMM's life
	// lock held for reading, written by release under it held for writing.
	execGone bool
}

// sharedAlias is what both W^X backings (dual on Linux, gridDual on the Windows
// grid) share: the shared object vmcode is made of, its writable view of
// all of vmcode at a constant offset from the executable addresses, and
// the resumable steps of tearing the two down.
type sharedAlias struct {
	// os, space, obj and rw are immutable after construction.
	os    mem.OS
	space *aspacem.Map
	obj   mem.Object
	// rw is the writable view's base; the view is as large as vmcode.
	rw uintptr
	// rwGone and closed record the teardown steps done, so that a failed
	// release can be called again and no operation touches a view that is
	// gone (the OS may have handed its range to someone else). Read by
	// operations under the VMM's life lock held for reading, written by
	// release under it held for writing.
	rwGone, closed bool
}

// unmapView unmaps the writable view of size bytes and records it free,
// once.
func (a *sharedAlias) unmapView(size uintptr) error {
	if a.rwGone {
		return nil
	}
	if err := a.os.Unmap(a.rw, size); err != nil {
		return fmt.Errorf("unmapping the writable view: %w", err)
	}
	a.rwGone = true
	if err := a.space.Update(aspacem.Segment{Start: a.rw, End: a.rw + size, Kind: aspacem.KindFree}); err != nil {
		return fmt.Errorf("recording the writable view's release: %w", err)
	}
	return nil
}

// closeObject closes the shared object, once: the last reference to its
// pages once both views are gone.
func (a *sharedAlias) closeObject() error {
	if a.closed {
		return nil
	}
	if err := a.os.CloseObject(a.obj); err != nil {
		return fmt.Errorf("closing %s: %w", a.obj.Name(), err)
	}
	a.closed = true
	return nil
}

// freedMax bounds the bytes of freed pages dual keeps for reuse: above it
// the release that crosses it punches all of them out.
const freedMax = 1 << 20

// newDual makes lin W^X: it creates the shared object, maps it PROT_NONE
// over all of lin's reservation (one MAP_FIXED, so vmcode is never
// unmapped and nothing else can land in it), maps the writable view where
// the OS chooses, and records the alias in space. On failure lin is still
// reserved (perhaps by a PROT_NONE view) and the caller releases it.
//
// IMA: osmem's CreateShared maps one page of the object executable before
// sizing it (a measuring kernel hashes a file on its first executable
// mmap: one page is instant, 2 GiB took DynamoRIO seconds); the views here
// are mapped only after it returns, so that order holds. They are mapped
// PROT_NONE and made executable page by page with mprotect, which IMA
// never measures (an appraising policy may refuse it, which the probe
// below turns into ErrWXUnavailable).
func newDual(lin *linear, space *aspacem.Map) (backing, error) {
	o := lin.os
	if o.Rules() == mem.RulesWindows {
		return nil, ErrWXWindows
	}
	base, size := lin.bounds()
	obj, err := o.CreateShared(SharedName, uint64(size))
	if err != nil {
		return nil, fmt.Errorf("creating the shared object: %w", err)
	}
	fail := func(err error) (backing, error) {
		_ = o.CloseObject(obj)
		return nil, err
	}
	if _, err := o.MapObject(obj, 0, base, size, mem.ProtNone, mem.Fixed); err != nil {
		return fail(fmt.Errorf("mapping the executable view over vmcode: %w", err))
	}
	// A kernel with vm.memfd_noexec=2, or a security module, refuses
	// executable views of a memfd (EPERM, EACCES): find out now, on one
	// page, rather than at the first commit.
	page := o.PageSize()
	if err := o.Protect(base, page, mem.ProtRX); err != nil {
		if errors.Is(err, mem.ErrNotSupported) {
			err = fmt.Errorf("%w: %w", ErrWXUnavailable, err)
		}
		return fail(fmt.Errorf("probing the executable view: %w", err))
	}
	if err := o.Protect(base, page, mem.ProtNone); err != nil {
		return fail(fmt.Errorf("probing the executable view: %w", err))
	}
	rw, err := o.MapObject(obj, 0, 0, size, mem.ProtNone, mem.Hint)
	if err != nil {
		return fail(fmt.Errorf("mapping the writable view: %w", err))
	}
	pages := size / page
	d := &dual{sharedAlias: sharedAlias{os: o, space: space, obj: obj, rw: rw}, lin: lin, name: "/memfd:" + SharedName,
		discard: nativeDiscard(o), freed: make([]uint64, (pages+63)/64)}
	if err := d.recordAlias(base, size, mem.ProtNone); err != nil {
		_ = o.Unmap(rw, size)
		return fail(err)
	}
	return d, nil
}

func (d *dual) bounds() (uintptr, uintptr) { return d.lin.bounds() }
func (d *dual) aliasBase() uintptr         { return d.rw }
func (d *dual) fileAlign() uintptr         { return d.lin.fileAlign() }

// alias returns the writable address of the executable address addr.
func (d *dual) alias(addr uintptr) uintptr { return addr - d.lin.base + d.rw }

// live refuses operations once release has started: a view that is gone
// may already hold someone else's mapping.
func (d *dual) live() error {
	if d.rwGone || d.execGone || d.closed {
		return errors.New("vmm: W^X vmcode is being released")
	}
	return nil
}

// checkWX refuses unknown protection bits and write with execute.
func checkWX(addr, size uintptr, prot mem.Prot) error {
	if !prot.Valid() {
		return &mem.Error{Op: "protect", Addr: addr, Size: size, Class: mem.ErrInvalid, Detail: fmt.Sprintf("unknown protection bits %#x", uint8(prot))}
	}
	if prot&mem.ProtWrite != 0 && prot&mem.ProtExec != 0 {
		return fmt.Errorf("%w: [%#x, +%#x) asked %v (write through the writable view instead)", ErrWriteExec, addr, size, prot)
	}
	return nil
}

// recordAlias records that the alias of [addr, addr+size) has protection
// prot.
func (d *dual) recordAlias(addr, size uintptr, prot mem.Prot) error {
	seg := aspacem.Segment{Start: d.alias(addr), End: d.alias(addr) + size, Kind: aspacem.KindShared, Prot: prot,
		Owner: OwnerVMCodeAlias, Name: d.name, Offset: uint64(addr - d.lin.base)}
	if err := d.space.Update(seg); err != nil {
		return fmt.Errorf("vmm: recording the writable view: %w", err)
	}
	return nil
}

// aliasState reports whether the alias of [addr, addr+size) is, as
// recorded, all PROT_NONE and whether it is all read-write.
func (d *dual) aliasState(addr, size uintptr) (none, rw bool) {
	lo := d.alias(addr)
	// The common case, one segment covering the range, without
	// allocating.
	if seg, ok := d.space.Lookup(lo); ok && seg.End >= lo+size {
		return seg.Prot == mem.ProtNone, seg.Prot == mem.ProtRW
	}
	none, rw = true, true
	var buf [segBuf]aspacem.Segment
	for _, seg := range d.space.AppendSegments(buf[:0], lo, lo+size) {
		none = none && seg.Prot == mem.ProtNone
		rw = rw && seg.Prot == mem.ProtRW
	}
	return none, rw
}

// onlyObject reports whether the executable view of [addr, addr+size) is,
// as recorded, all the shared object's view (no private file view).
func (d *dual) onlyObject(addr, size uintptr) bool {
	if seg, ok := d.space.Lookup(addr); ok && seg.End >= addr+size {
		return seg.Kind == aspacem.KindShared
	}
	var buf [segBuf]aspacem.Segment
	for _, seg := range d.space.AppendSegments(buf[:0], addr, addr+size) {
		if seg.Kind != aspacem.KindShared {
			return false
		}
	}
	return true
}

// setAlias gives the alias of [addr, addr+size) protection prot and
// records it.
func (d *dual) setAlias(addr, size uintptr, prot mem.Prot) error {
	if err := d.os.Protect(d.alias(addr), size, prot); err != nil {
		return fmt.Errorf("writable view: %w", err)
	}
	return d.recordAlias(addr, size, prot)
}

// freedRuns calls fn on each maximal run of freed pages in [addr,
// addr+size), in order, until fn returns an error.
//
// Preconditions: d.mu is held.
func (d *dual) freedRuns(addr, size uintptr, fn func(addr, size uintptr) error) error {
	page := d.os.PageSize()
	first, end := (addr-d.lin.base)/page, (addr-d.lin.base+size)/page
	for i := first; i < end; {
		w := d.freed[i/64] >> (i % 64)
		if w == 0 {
			i = (i/64 + 1) * 64
			continue
		}
		i += uintptr(bits.TrailingZeros64(w))
		if i >= end {
			break
		}
		j := i
		for j < end && d.freed[j/64]&(1<<(j%64)) != 0 {
			j++
		}
		if err := fn(d.lin.base+i*page, (j-i)*page); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// setFreed sets (or clears) the freed bits of [addr, addr+size).
//
// Preconditions: d.mu is held.
func (d *dual) setFreed(addr, size uintptr, set bool) {
	page := d.os.PageSize()
	for i := (addr - d.lin.base) / page; i < (addr-d.lin.base+size)/page; i++ {
		bit := uint64(1) << (i % 64)
		if was := d.freed[i/64]&bit != 0; was != set {
			d.freed[i/64] ^= bit
			if set {
				d.nfreed++
			} else {
				d.nfreed--
			}
		}
	}
}

// anyFreed reports whether [addr, addr+size) holds a freed page.
//
// Preconditions: d.mu is held.
func (d *dual) anyFreed(addr, size uintptr) bool {
	if d.nfreed == 0 {
		return false
	}
	errFound := errors.New("found")
	return d.freedRuns(addr, size, func(uintptr, uintptr) error { return errFound }) != nil
}

// drop returns the object's pages under [addr, addr+size) and leaves the
// alias there PROT_NONE. An alias already PROT_NONE is over holes and
// freed pages only, so it is left alone: the freed ones stay freed.
func (d *dual) drop(addr, size uintptr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	none, rw := d.aliasState(addr, size)
	if none {
		return nil
	}
	if err := d.punch(addr, size, rw); err != nil {
		return err
	}
	// Freed pages in the range went with the rest.
	d.setFreed(addr, size, false)
	return d.setAlias(addr, size, mem.ProtNone)
}

// punch frees the object's pages under [addr, addr+size), making the alias
// read-write first unless rw says it is: MADV_REMOVE wants a writable
// shared mapping. The simulator makes the same calls but the discard.
func (d *dual) punch(addr, size uintptr, rw bool) error {
	if !rw {
		if err := d.setAlias(addr, size, mem.ProtRW); err != nil {
			return err
		}
	}
	if d.discard != nil {
		if err := d.discard(d.alias(addr), size); err != nil {
			return fmt.Errorf("returning the pages of [%#x, +%#x): %w", addr, size, err)
		}
	}
	return nil
}

// commit makes the alias read-write, zeroing freed pages through it, then
// the executable view prot.
func (d *dual) commit(addr, size uintptr, prot mem.Prot) error {
	if err := d.live(); err != nil {
		return err
	}
	if err := checkWX(addr, size, prot); err != nil {
		return err
	}
	d.mu.Lock()
	if d.anyFreed(addr, size) {
		err := d.reviveLocked(addr, size)
		d.mu.Unlock()
		if err != nil {
			return err
		}
	} else {
		// Nothing here is freed, and nothing can become freed while the
		// slot that owns the range commits it: no lock needed.
		d.mu.Unlock()
		if _, rw := d.aliasState(addr, size); !rw {
			if err := d.setAlias(addr, size, mem.ProtRW); err != nil {
				return err
			}
		}
	}
	return d.os.Protect(addr, size, prot)
}

// reviveLocked makes the alias of [addr, addr+size) read-write and zeroes
// the freed pages in it, which are then plain committed pages.
//
// Preconditions: d.mu is held.
func (d *dual) reviveLocked(addr, size uintptr) error {
	if _, rw := d.aliasState(addr, size); !rw {
		if err := d.setAlias(addr, size, mem.ProtRW); err != nil {
			return err
		}
	}
	return d.freedRuns(addr, size, func(a, n uintptr) error {
		if d.discard != nil {
			clear(rawmem.Bytes(d.alias(a), n))
		}
		d.setFreed(a, n, false)
		return nil
	})
}

// decommit returns the pages and makes both views PROT_NONE. If the last
// step fails the contents are gone but the executable view keeps its
// protection, as recorded.
func (d *dual) decommit(addr, size uintptr) error {
	if err := d.live(); err != nil {
		return err
	}
	if err := d.drop(addr, size); err != nil {
		return err
	}
	return d.os.Protect(addr, size, mem.ProtNone)
}

// protect changes the executable view only: the alias of committed pages
// stays read-write, so that code can be patched while it runs. Reserved
// (and freed) pages, with the alias PROT_NONE, are refused: they have no
// storage to protect, and mprotect would make them accessible.
func (d *dual) protect(addr, size uintptr, prot mem.Prot) error {
	if err := d.live(); err != nil {
		return err
	}
	if err := checkWX(addr, size, prot); err != nil {
		return err
	}
	var buf [segBuf]aspacem.Segment
	for _, seg := range d.space.AppendSegments(buf[:0], addr, addr+size) {
		if seg.Kind != aspacem.KindShared {
			continue // a file view
		}
		if _, rw := d.aliasState(seg.Start, seg.Size()); !rw {
			return &mem.Error{Op: "protect", Addr: addr, Size: size, Class: mem.ErrNotMapped,
				Detail: fmt.Sprintf("[%#x, %#x) is reserved, not committed", seg.Start, seg.End)}
		}
	}
	return d.os.Protect(addr, size, prot)
}

// mapFile maps a private file view over the executable view. The object's
// committed pages under it are returned first: they could no longer be
// reached from vmcode. (Freed ones stay freed, for Trim.)
func (d *dual) mapFile(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot) error {
	if err := d.live(); err != nil {
		return err
	}
	if err := checkWX(addr, size, prot); err != nil {
		return err
	}
	if err := d.drop(addr, size); err != nil {
		return err
	}
	_, err := d.os.MapObject(obj, off, addr, size, prot, mem.Fixed)
	return err
}

// reset makes the range reserved again. A range that is all committed
// object pages (a code unit, the common case) becomes freed: both views
// PROT_NONE by mprotect, which keeps the pages and their page tables for
// the next commit; crossing freedMax trims. Anything else is dropped and
// the executable view made PROT_NONE: an mprotect where it is all the
// object's view, otherwise the object mapped PROT_NONE back over it,
// replacing file views in one MAP_FIXED.
func (d *dual) reset(addr, size uintptr) error {
	if err := d.live(); err != nil {
		return err
	}
	d.mu.Lock()
	if _, rw := d.aliasState(addr, size); rw && d.onlyObject(addr, size) {
		if err := d.setAlias(addr, size, mem.ProtNone); err != nil {
			d.mu.Unlock()
			return err
		}
		d.setFreed(addr, size, true)
		over := d.nfreed*d.os.PageSize() > freedMax
		d.mu.Unlock()
		if err := d.os.Protect(addr, size, mem.ProtNone); err != nil {
			return err
		}
		if over {
			// Best effort: what fails stays freed, for the next trim.
			_ = d.trim()
		}
		return nil
	}
	d.mu.Unlock()
	if err := d.drop(addr, size); err != nil {
		return err
	}
	if d.onlyObject(addr, size) {
		return d.os.Protect(addr, size, mem.ProtNone)
	}
	_, err := d.os.MapObject(d.obj, uint64(addr-d.lin.base), addr, size, mem.ProtNone, mem.Fixed)
	return err
}

// trim punches every freed page out of the object, a run at a time: alias
// read-write (MADV_REMOVE needs it), discard, alias PROT_NONE. A run that
// fails stays freed; its alias is recorded as it is.
func (d *dual) trim() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nfreed == 0 {
		return nil
	}
	base, size := d.lin.bounds()
	return d.freedRuns(base, size, func(a, n uintptr) error {
		_, rw := d.aliasState(a, n)
		if err := d.punch(a, n, rw); err != nil {
			return err
		}
		if err := d.setAlias(a, n, mem.ProtNone); err != nil {
			return err
		}
		d.setFreed(a, n, false)
		return nil
	})
}

// freedBytes returns the bytes of freed pages.
func (d *dual) freedBytes() uintptr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nfreed * d.os.PageSize()
}

// reserved returns the executable view of reserved vmcode: the object
// mapped PROT_NONE, at the offset of addr.
func (d *dual) reserved(addr, size uintptr) []aspacem.Segment {
	return []aspacem.Segment{{Start: addr, End: addr + size, Kind: aspacem.KindShared, Owner: OwnerVMCode,
		Name: d.name, Offset: uint64(addr - d.lin.base)}}
}

// committed returns the executable view of committed vmcode: the object
// mapped with prot.
func (d *dual) committed(addr, size uintptr, prot mem.Prot) []aspacem.Segment {
	return []aspacem.Segment{{Start: addr, End: addr + size, Kind: aspacem.KindShared, Prot: prot, Owner: OwnerVMCode,
		Name: d.name, Offset: uint64(addr - d.lin.base)}}
}

// release unmaps the alias (recording it free), then vmcode, then closes
// the object, which returns every page, freed ones included. A failed step
// leaves the steps before it done and recorded; calling release again
// resumes.
func (d *dual) release() error {
	_, size := d.lin.bounds()
	if err := d.unmapView(size); err != nil {
		return err
	}
	if !d.execGone {
		if err := d.lin.release(); err != nil {
			return err
		}
		d.execGone = true
	}
	return d.closeObject()
}
