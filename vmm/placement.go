package vmm

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// Placement says how vmcode was placed: which policy chose its base and
// every fallback taken on the way. Nothing is placed differently from
// what was asked without a line in Fallbacks.
type Placement struct {
	// How names the policy that placed vmcode: "os" (the OS chose),
	// "base" (the requested base), "base+offset" (the requested base plus
	// a random offset), "near-app" (within rel32 reach of Config.Near),
	// "low" (a fallback from a base below 2 GiB that was taken, to the
	// free gap nearest it below 2 GiB) or "elsewhere" (a fallback from a
	// base that was taken, where the OS chose).
	How string
	// RequestedBase and RequestedSize are what the configuration asked.
	RequestedBase, RequestedSize uintptr
	// Offset is the random offset added to RequestedBase.
	Offset uintptr
	// Attempts counts reservation attempts.
	Attempts int
	// Fallbacks describes each fallback taken, in order; empty when none.
	Fallbacks []string
}

// ReachesAll reports whether target is rel32-reachable from every address
// of vmcode (mem.ReachesAll: HotSpot's both-ends rule).
func (v *VMM) ReachesAll(target uintptr) bool {
	return mem.ReachesAll(mem.Range{Start: v.codeBase, End: v.codeBase + v.codeSize}, target)
}

// errNoFit marks a placement that failed for want of room, the only
// failure a smaller size can cure.
var errNoFit = errors.New("no room")

// place reserves vmcode as cfg asks, taking the fallbacks it allows.
func place(o mem.OS, space *aspacem.Map, cfg *Config, size uintptr, p *Placement) (*linear, error) {
	gran := o.Granularity()
	floor := cfg.MinVMCodeSize
	if floor == 0 {
		floor = DefaultMinVMCodeSize
	}
	for {
		lin, err := placeOnce(o, space, cfg, size, p)
		if err == nil || !cfg.AllowSmaller || !errors.Is(err, errNoFit) {
			return lin, err
		}
		smaller := mem.AlignDown(size-size/16, gran)
		if smaller < floor || smaller == size {
			return nil, fmt.Errorf("%w; no size down to the floor %#x fits", err, floor)
		}
		p.Fallbacks = append(p.Fallbacks, fmt.Sprintf("smaller: %#x does not fit, trying %#x", size, smaller))
		size = smaller
	}
}

// placeOnce tries one size.
func placeOnce(o mem.OS, space *aspacem.Map, cfg *Config, size uintptr, p *Placement) (*linear, error) {
	switch {
	case cfg.Near != nil:
		return placeNear(o, space, *cfg.Near, size, p)
	case cfg.VMCodeBase != 0:
		base := cfg.VMCodeBase
		p.How = "base"
		if cfg.VMCodeMaxOffset != 0 {
			gran := uint64(o.Granularity())
			steps := uint64(cfg.VMCodeMaxOffset) / gran
			if steps > 0 {
				p.Offset = uintptr(rand.Uint64N(steps) * gran)
				base += p.Offset
				p.How = "base+offset"
			}
		}
		p.Attempts++
		lin, err := newLinear(o, base, size, mem.Exact)
		if err == nil {
			return lin, nil
		}
		if !cfg.AllowElsewhere || !(errors.Is(err, mem.ErrExists) || errors.Is(err, mem.ErrNoMemory)) {
			return nil, classify(err)
		}
		taken := fmt.Sprintf("%#x+%#x is taken (%v)", base, size, err)
		if base+size <= lowWindow && base+size > base {
			// A base below 2 GiB asks for 32-bit code addresses (a
			// translator's narrow forms, absolute jump tables): the
			// free gap nearest the base below 2 GiB keeps them,
			// where the OS would choose high. (A non-PIE Go
			// program's brk heap lies anywhere in the GiB above
			// it, and took DynamoRIO's 0x3f000000 now and then.)
			lin, lerr := placeAdvised(o, space, base, min(base, lowWindow-base), size, p)
			if lerr == nil {
				p.Fallbacks = append(p.Fallbacks, "low: "+taken)
				p.How = "low"
				return lin, nil
			}
			taken += fmt.Sprintf(", and no gap below %#x fits (%v)", uintptr(lowWindow), lerr)
		}
		p.Fallbacks = append(p.Fallbacks, "elsewhere: "+taken)
		p.How = "elsewhere"
		fallthrough
	default:
		if p.How == "" {
			p.How = "os"
		}
		p.Attempts++
		lin, err := newLinear(o, 0, size, mem.Hint)
		return lin, classify(err)
	}
}

// classify marks the OS's "no room" errors with errNoFit.
func classify(err error) error {
	if err != nil && errors.Is(err, mem.ErrNoMemory) {
		return fmt.Errorf("%w: %w", errNoFit, err)
	}
	return err
}

// nearTries bounds how often placeNear re-reads the address space after
// losing a race for a gap it was advised.
const nearTries = 8

// placeNear reserves vmcode inside the window rel32-reachable from every
// byte of r, as near r as aspacem's advice finds room (DynamoRIO's
// vm_base_near_app). If the advised gap is taken (another thread, or a
// map older than the kernel's view), the map is refreshed from the kernel
// and advice asked again.
func placeNear(o mem.OS, space *aspacem.Map, r mem.Range, size uintptr, p *Placement) (*linear, error) {
	p.How = "near-app"
	if r.End <= r.Start {
		return nil, fmt.Errorf("vmm: near range [%#x, %#x) is empty", r.Start, r.End)
	}
	lo, hi := o.Bounds()
	gran := o.Granularity()
	w, ok := mem.NearWindow(r, mem.Range{Start: lo, End: hi}, gran)
	wlo, whi := w.Start, w.End
	if !ok || whi-wlo < size {
		return nil, fmt.Errorf("%w: the window reachable from [%#x, %#x) holds less than %#x bytes", errNoFit, r.Start, r.End, size)
	}
	return placeAdvised(o, space, wlo+(whi-wlo)/2, (whi-wlo)/2, size, p)
}

// lowWindow is the top of the addresses that fit 32 bits signed: a
// VMCodeBase wholly below it is looked for again below it when taken.
const lowWindow = 1 << 31

// placeAdvised reserves size bytes of vmcode within radius of mid, as near
// mid as aspacem's advice finds room. If the advised gap is taken
// (another thread, or a map older than the kernel's view), the map is
// refreshed from the kernel and advice asked again.
func placeAdvised(o mem.OS, space *aspacem.Map, mid, radius, size uintptr, p *Placement) (*linear, error) {
	gran := o.Granularity()
	for i := 0; i < nearTries; i++ {
		// The first try trusts the map (New has just loaded it, or the
		// caller keeps it): a stale gap only costs an ErrExists and a
		// retry, which refreshes. Reading /proc/self/maps on every try
		// cost each smaller-size fallback a read.
		if i > 0 {
			if err := space.Refresh(o); err != nil {
				return nil, err
			}
		}
		addr, err := space.Advise(size, gran, mid, radius)
		if err != nil {
			return nil, fmt.Errorf("%w: no free %#x bytes within %#x of %#x: %v", errNoFit, size, radius, mid, err)
		}
		p.Attempts++
		lin, err := newLinear(o, addr, size, mem.Exact)
		if err == nil {
			return lin, nil
		}
		if !errors.Is(err, mem.ErrExists) {
			return nil, classify(err)
		}
		p.Fallbacks = append(p.Fallbacks, fmt.Sprintf("retry: advised %#x was taken before it was reserved", addr))
	}
	return nil, fmt.Errorf("%w: lost the race for an advised gap %d times", errNoFit, nearTries)
}

// placeGrid reserves vmcode as a grid of slot reservations (Windows rules):
// at the requested base, or at the grid's own candidates (low, 4 GiB
// apart: docs/ARCHITECTURE.md, "Windows under Wine") when no base is asked or, with
// AllowElsewhere, when it is taken. Near placement is not offered for the
// grid yet: the grid picks among few candidates and cannot shrink.
func placeGrid(o mem.OS, cfg *Config, size uintptr, p *Placement) (*grid, error) {
	if cfg.Near != nil {
		return nil, errors.New("near-application placement is not supported for the Windows grid yet")
	}
	const slot = DefaultGridSlotSize
	base := cfg.VMCodeBase
	if base != 0 {
		// The allocator aligns file slots to absolute multiples of the
		// grid slot, so the grid must start on one.
		if r := base % slot; r != 0 {
			up := base + slot - r
			p.Fallbacks = append(p.Fallbacks, fmt.Sprintf("rounded: base %#x up to %#x, a multiple of the %#x grid slot", base, up, uintptr(slot)))
			base = up
		}
		if cfg.VMCodeMaxOffset >= slot {
			p.Offset = uintptr(rand.Uint64N(uint64(cfg.VMCodeMaxOffset/slot))) * slot
			base += p.Offset
		}
	}
	g, err := newGrid(o, size, slot, gridOptions{base: base, fallback: cfg.AllowElsewhere, now: gridClock()})
	if err != nil {
		return nil, err
	}
	st := g.Stats()
	p.Attempts = len(st.Attempts)
	switch {
	case base == 0:
		p.How = "grid"
	case st.Base != base:
		p.How = "elsewhere"
	case cfg.VMCodeMaxOffset >= slot:
		p.How = "base+offset" // even when the offset drawn is 0
	default:
		p.How = "base"
	}
	// Walking the grid's own candidates is its policy, not a fallback;
	// leaving a requested base is.
	for _, a := range st.Attempts {
		if a.Err != nil && base != 0 && a.Base == base {
			p.Fallbacks = append(p.Fallbacks, "elsewhere: "+a.String())
		}
	}
	return g, nil
}
