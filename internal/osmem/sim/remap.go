package sim

import (
	"github.com/reachvm/reachvm/internal/osmem"
)

// efault is the errno of mremap on a range that is not one mapping.
const efault = 14

// Remap is mremap under Linux rules (osmem.Remapper), as the kernel
// (6.18, measured) does it: something must be mapped at addr, else
// ErrNotMapped (EFAULT); shrinking in place unmaps the tail, whatever it
// holds; growing or moving needs the range (what is kept of it) to be one
// mapping (its segments contiguous, of one type, protection and sharing,
// a view's at contiguous offsets of one object), else EFAULT. It grows in
// place into free space right after the mapping, and otherwise, with
// Hint or Fixed, moves (its segments carried over, the new tail
// continuing the last one). Under Windows rules it fails with
// ErrNotSupported.
func (s *OS) Remap(addr, oldSize, newSize uintptr, mode osmem.Mode, newAddr uintptr) (uintptr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "remap"
	if err := s.enterLocked(op, addr, oldSize); err != nil {
		return 0, err
	}
	if s.windows() {
		return 0, fail(op, addr, oldSize, osmem.ErrNotSupported, 0, "no mremap under Windows rules")
	}
	if err := s.checkRange(op, addr, oldSize); err != nil {
		return 0, err
	}
	if newSize == 0 || newSize%s.page != 0 {
		return 0, fail(op, addr, newSize, osmem.ErrInvalid, 0, "new size zero or not a multiple of the page")
	}
	if mode > osmem.Fixed {
		return 0, fail(op, addr, oldSize, osmem.ErrInvalid, 0, "unknown mode %v", mode)
	}
	end := addr + oldSize
	if _, ok := s.sp.at(addr); !ok {
		return 0, fail(op, addr, oldSize, osmem.ErrNotMapped, efault, "nothing mapped at the address")
	}
	if mode != osmem.Fixed && newSize <= oldSize {
		// Shrinking is munmap of the tail, whatever it holds.
		if newSize < oldSize {
			s.sp.remove(addr+newSize, end)
		}
		return addr, nil
	}
	if newSize < oldSize {
		// A move keeps only the first newSize bytes: the rest goes
		// first, as the kernel's mremap_to unmaps it.
		s.sp.remove(addr+newSize, end)
		oldSize, end = newSize, addr+newSize
	}
	if s.sp.mappedTo(addr, end) != end {
		return 0, fail(op, addr, oldSize, osmem.ErrNotMapped, efault, "not wholly mapped")
	}
	s.sp.split(addr)
	s.sp.split(end)
	segs := s.sp.in(addr, end)
	for i := 1; i < len(segs); i++ {
		x, y := &segs[i-1], &segs[i]
		if x.typ != y.typ || x.prot != y.prot || x.shared != y.shared || x.obj != y.obj || x.name != y.name ||
			(x.backed() && x.off+uint64(x.end-x.start) != y.off) {
			s.sp.coalesce(addr, end)
			return 0, fail(op, addr, oldSize, osmem.ErrNotMapped, efault, "more than one mapping")
		}
	}
	// tail continues the last segment over n bytes from a.
	tail := func(a, n uintptr) seg {
		g := segs[len(segs)-1]
		off := g.off + uint64(g.end-g.start)
		g.start, g.end = a, a+n
		if g.backed() {
			g.off = off
		} else {
			g.off = 0
		}
		return g
	}
	if mode != osmem.Fixed {
		switch {
		case addr+newSize <= s.hi && addr+newSize > addr && !s.sp.overlaps(end, addr+newSize):
			s.sp.insert(tail(end, newSize-oldSize))
			s.sp.coalesce(addr, addr+newSize)
			return addr, nil
		case mode == osmem.Exact:
			s.sp.coalesce(addr, end)
			return 0, fail(op, addr, oldSize, osmem.ErrNoMemory, enomem, "cannot grow in place to %#x bytes", newSize)
		}
	}
	to := newAddr
	if mode == osmem.Fixed {
		if err := s.checkRange(op, newAddr, newSize); err != nil || newAddr < s.lo {
			s.sp.coalesce(addr, end)
			return 0, fail(op, newAddr, newSize, osmem.ErrInvalid, einval, "new range out of bounds or unaligned")
		}
		if newAddr < end && addr < newAddr+newSize {
			s.sp.coalesce(addr, end)
			return 0, fail(op, newAddr, newSize, osmem.ErrInvalid, einval, "new range overlaps the old one")
		}
	} else {
		var ok bool
		if to, ok = s.findLocked(newSize); !ok {
			s.sp.coalesce(addr, end)
			return 0, fail(op, addr, newSize, osmem.ErrNoMemory, enomem, "no free range of %#x bytes", newSize)
		}
	}
	keep := min(oldSize, newSize)
	s.sp.remove(addr, end)
	if mode == osmem.Fixed {
		s.sp.remove(to, to+newSize)
	}
	for _, g := range segs {
		if g.start >= addr+keep {
			break
		}
		g.end = min(g.end, addr+keep)
		g.start, g.end = to+(g.start-addr), to+(g.end-addr)
		s.sp.insert(g)
	}
	if newSize > oldSize {
		s.sp.insert(tail(to+oldSize, newSize-oldSize))
	}
	s.sp.coalesce(to, to+newSize)
	return to, nil
}
