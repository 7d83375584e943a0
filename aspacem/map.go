package aspacem

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/google/btree"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
)

// Config fixes the address space a Map covers and the rules it checks
// segments and advice against. It never changes after New.
type Config struct {
	// Lo and Hi bound the address space: [Lo, Hi). Both are multiples of
	// Granularity.
	Lo, Hi uintptr
	// PageSize is the unit of every segment boundary and file offset: a
	// power of two.
	PageSize uintptr
	// Granularity is the minimum alignment of placement advice: the page
	// size on Linux, 64 KiB on Windows (Valgrind's Windows port learnt
	// this the hard way: VirtualAlloc rounds bases down to it). A power
	// of two, multiple of PageSize.
	Granularity uintptr
	// FoldCase makes names compare case-insensitively (Windows file
	// names): in SyncCheck, in SegmentsNamed and when merging adjacent
	// views (the merged segment keeps the lower piece's spelling).
	FoldCase bool
	// Rules are the OS rules the kernel view follows. Under RulesWindows,
	// SyncCheck tells reservations from committed no-access memory (which
	// VirtualQuery can, and Linux cannot) and does not compare file
	// offsets (which VirtualQuery does not report).
	Rules mem.Rules
}

// ConfigFor returns the Config matching a backend: its bounds, page size,
// granularity and rules; FoldCase under Windows rules.
func ConfigFor(os mem.OS) Config {
	lo, hi := os.Bounds()
	return Config{
		Lo:          lo,
		Hi:          hi,
		PageSize:    os.PageSize(),
		Granularity: os.Granularity(),
		FoldCase:    os.Rules() == mem.RulesWindows,
		Rules:       os.Rules(),
	}
}

// validate checks that c describes a usable address space.
func (c *Config) validate() error {
	pow2 := func(x uintptr) bool { return x != 0 && bits.OnesCount64(uint64(x)) == 1 }
	switch {
	case !pow2(c.PageSize):
		return fmt.Errorf("aspacem: page size %#x is not a power of two", c.PageSize)
	case !pow2(c.Granularity):
		return fmt.Errorf("aspacem: granularity %#x is not a power of two", c.Granularity)
	case c.Granularity < c.PageSize:
		return fmt.Errorf("aspacem: granularity %#x below page size %#x", c.Granularity, c.PageSize)
	case c.Lo >= c.Hi:
		return fmt.Errorf("aspacem: empty address space [%#x-%#x)", c.Lo, c.Hi)
	case c.Lo%c.Granularity != 0 || c.Hi%c.Granularity != 0:
		return fmt.Errorf("aspacem: address space [%#x-%#x) not aligned to granularity %#x", c.Lo, c.Hi, c.Granularity)
	}
	return nil
}

// Map is the segment map of one address space: a sequence of segments that
// covers [Lo, Hi) exactly, free space included, like Valgrind's nsegments
// array. Unlike that array (sorted, O(n) per change, capped at 30,000
// segments), it is a btree by start address plus an augmented tree of the
// free gaps, so Lookup, Update and Advise are O(log n) and there is no cap.
//
// Map is told about every change reachvm makes (Update) rather than
// re-reading the kernel; SyncCheck compares the two views. A Map is safe
// for concurrent use: every method takes mu. Methods named ...Locked
// require it held.
type Map struct {
	// cfg is immutable after New; it may be read without mu.
	cfg Config

	// mu guards every field below.
	mu sync.Mutex

	// segs holds every segment, keyed by Start.
	//
	// Invariants: the segments cover [cfg.Lo, cfg.Hi) with no gap and no
	// overlap; each is valid (Segment.validate); no two adjacent segments
	// are mergeable.
	segs *btree.BTreeG[segItem]

	// gaps holds exactly the free segments of segs.
	gaps *gapTree

	// nowned counts owned segments, so Owned sizes its result at once.
	nowned int

	// scratch is reused by updateLocked to collect overlapped segments.
	scratch []Segment

	// spare holds Segments deleted from segs, for insertLocked to reuse:
	// an update replaces a few segments, and allocating each anew was
	// most of what an update allocated. No pointer to a segment of segs
	// outlives the lock (readers copy), so a deleted one is free.
	spare []*Segment
}

// maxSpare bounds spare.
const maxSpare = 16

// segItem is what segs stores: the key inline, so that the btree's binary
// searches compare 16-byte items without copying or dereferencing whole
// segments, and the segment behind a pointer. The pointed-to Segment is
// never changed in place: an update replaces the item.
type segItem struct {
	start uintptr
	seg   *Segment
}

func segLess(a, b segItem) bool { return a.start < b.start }

// ascendLocked calls fn on every segment starting in [lo, hi), in order,
// until fn returns false.
//
// Preconditions: m.mu is held.
func (m *Map) ascendLocked(lo, hi uintptr, fn func(s *Segment) bool) {
	it := func(i segItem) bool { return fn(i.seg) }
	if hi == 0 {
		m.segs.AscendGreaterOrEqual(segItem{start: lo}, it)
		return
	}
	m.segs.AscendRange(segItem{start: lo}, segItem{start: hi}, it)
}

// New returns a Map of cfg's address space, all of it free.
func New(cfg Config) (*Map, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Map{
		cfg:  cfg,
		segs: btree.NewG(16, segLess),
		gaps: newGapTree(cfg.Granularity),
	}
	m.insertLocked(Segment{Start: cfg.Lo, End: cfg.Hi, Kind: KindFree})
	return m, nil
}

// Load returns a Map of os's address space in which every region os
// reports is a KindForeign segment: the starting point before reachvm maps
// anything. On Linux the regions come from /proc/self/maps, on Windows
// from a VirtualQuery walk.
func Load(os mem.OS) (*Map, error) {
	m, err := New(ConfigFor(os))
	if err != nil {
		return nil, err
	}
	if err := m.Refresh(os); err != nil {
		return nil, err
	}
	return m, nil
}

// LoadSelf returns Load of the OS the process runs on: a Map of the
// running process's address space, for a caller that has no mem.OS of its
// own (a VMM's map is its Space). The map is a snapshot; nothing records
// later changes in it unless the caller does.
func LoadSelf() (*Map, error) {
	return Load(osmem.Native())
}

// Config returns the map's configuration.
func (m *Map) Config() Config { return m.cfg }

// Len returns the number of segments, free ones included.
func (m *Map) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.segs.Len()
}

// Lookup returns the segment containing addr. It reports false only if
// addr is outside [Lo, Hi).
func (m *Map) Lookup(addr uintptr) (Segment, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookupLocked(addr)
}

// lookupLocked is Lookup.
//
// Preconditions: m.mu is held.
func (m *Map) lookupLocked(addr uintptr) (Segment, bool) {
	if addr < m.cfg.Lo || addr >= m.cfg.Hi {
		return Segment{}, false
	}
	var found Segment
	m.segs.DescendLessOrEqual(segItem{start: addr}, func(i segItem) bool {
		found = *i.seg
		return false
	})
	return found, true
}

// Segments returns the segments that intersect [lo, hi), free ones
// included, clipped to it (a clipped view's Offset is advanced to its new
// Start). It returns nil if the range is empty or outside [Lo, Hi).
func (m *Map) Segments(lo, hi uintptr) []Segment {
	return m.AppendSegments(nil, lo, hi)
}

// AppendSegments appends to dst what Segments(lo, hi) returns and
// returns the extended slice: a caller that passes a buffer of its own
// (on its stack) looks at a range without allocating.
func (m *Map) AppendSegments(dst []Segment, lo, hi uintptr) []Segment {
	if lo < m.cfg.Lo {
		lo = m.cfg.Lo
	}
	if hi > m.cfg.Hi {
		hi = m.cfg.Hi
	}
	if lo >= hi {
		return dst
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	first, _ := m.lookupLocked(lo)
	if first.End >= hi {
		// The common case, one segment: no walk.
		return append(dst, first.clip(lo, hi))
	}
	m.ascendLocked(first.Start, hi, func(s *Segment) bool {
		dst = append(dst, s.clip(lo, hi))
		return true
	})
	return dst
}

// Owned returns every owned segment (reservation, anon, file, shared) in
// address order. It is O(n) in the number of segments.
func (m *Map) Owned() []Segment {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Segment, 0, m.nowned)
	m.ascendLocked(0, 0, func(s *Segment) bool {
		if s.Kind.Owned() {
			out = append(out, *s)
		}
		return true
	})
	return out
}

// SegmentsNamed returns every segment whose Name is name (compared
// case-insensitively under FoldCase), in address order. It is O(n).
func (m *Map) SegmentsNamed(name string) []Segment {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Segment
	m.ascendLocked(0, 0, func(s *Segment) bool {
		if s.Name != "" && namesEqual(s.Name, name, m.cfg.FoldCase) {
			out = append(out, *s)
		}
		return true
	})
	return out
}

// Update records that [s.Start, s.End) now is s: the parts of the segments
// it overlaps are replaced, those sticking out are kept (with their offsets
// advanced), and s merges with neighbours of identical attributes (as
// Valgrind's preen, but only at s's two ends, so O(log n + k) for k
// overlapped segments). Recording a release is Update with KindFree.
//
// Update validates s first and changes nothing on error: Start and End page
// aligned, Lo <= Start < End <= Hi, a known Kind and Prot, Owner and Name
// valid UTF-8 without NUL or control characters, attributes that fit the
// kind (see Segment). A KindShared segment is recorded with Shared set.
func (m *Map) Update(s Segment) error {
	if err := s.validate(&m.cfg); err != nil {
		return err
	}
	s.normalize()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.updateLocked(s)
	return nil
}

// updateLocked replaces [s.Start, s.End) by s and merges at both ends.
//
// Preconditions: m.mu is held; s is valid and normalized.
func (m *Map) updateLocked(s Segment) {
	first, _ := m.lookupLocked(s.Start)
	over := m.scratch[:0]
	m.ascendLocked(first.Start, s.End, func(x *Segment) bool {
		over = append(over, *x)
		return true
	})
	last := over[len(over)-1]
	for i := range over {
		m.deleteLocked(over[i])
	}
	clear(over)
	m.scratch = over[:0]

	// Left side: the remnant of the first overlapped segment, or the
	// segment ending at s.Start.
	if first.Start < s.Start {
		left := first.clip(first.Start, s.Start)
		if mergeable(&left, &s, m.cfg.FoldCase) {
			s.Start, s.Offset, s.Name = left.Start, left.Offset, left.Name
		} else {
			m.insertLocked(left)
		}
	} else if s.Start > m.cfg.Lo {
		prev, _ := m.lookupLocked(s.Start - 1)
		if mergeable(&prev, &s, m.cfg.FoldCase) {
			m.deleteLocked(prev)
			s.Start, s.Offset, s.Name = prev.Start, prev.Offset, prev.Name
		}
	}
	// Right side: the remnant of the last overlapped segment, or the
	// segment starting at s.End.
	if last.End > s.End {
		right := last.clip(s.End, last.End)
		if mergeable(&s, &right, m.cfg.FoldCase) {
			s.End = right.End
		} else {
			m.insertLocked(right)
		}
	} else if s.End < m.cfg.Hi {
		next, _ := m.lookupLocked(s.End)
		if mergeable(&s, &next, m.cfg.FoldCase) {
			m.deleteLocked(next)
			s.End = next.End
		}
	}
	m.insertLocked(s)
}

// insertLocked adds s to segs and, if free, to gaps.
//
// Preconditions: m.mu is held (or m is not yet shared); s overlaps nothing
// in segs.
func (m *Map) insertLocked(s Segment) {
	var p *Segment
	if n := len(m.spare); n > 0 {
		p = m.spare[n-1]
		m.spare = m.spare[:n-1]
	} else {
		p = new(Segment)
	}
	*p = s
	m.segs.ReplaceOrInsert(segItem{s.Start, p})
	switch {
	case s.Kind == KindFree:
		m.gaps.insert(s.Start, s.End)
	case s.Kind.Owned():
		m.nowned++
	}
}

// deleteLocked removes s (which must be in segs) from segs and gaps.
//
// Preconditions: m.mu is held.
func (m *Map) deleteLocked(s Segment) {
	if old, ok := m.segs.Delete(segItem{start: s.Start}); ok && len(m.spare) < maxSpare {
		*old.seg = Segment{}
		m.spare = append(m.spare, old.seg)
	}
	switch {
	case s.Kind == KindFree:
		m.gaps.remove(s.Start)
	case s.Kind.Owned():
		m.nowned--
	}
}

// CheckInvariants verifies every invariant of the map and returns an error
// describing the first violation, or nil. It is O(n); tests of aspacem and
// of the layers above run it after every operation.
func (m *Map) CheckInvariants() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkLocked()
}

// checkLocked is CheckInvariants.
//
// Preconditions: m.mu is held.
func (m *Map) checkLocked() error {
	var errs []error
	next := m.cfg.Lo
	var prev Segment
	nfree, nowned := 0, 0
	var freeList []Segment
	m.segs.Ascend(func(i segItem) bool {
		s := *i.seg
		if i.start != s.Start {
			errs = append(errs, fmt.Errorf("segment %v filed under %#x", s, i.start))
			return false
		}
		if s.Start != next {
			errs = append(errs, fmt.Errorf("segment %v starts at %#x, want %#x (gap or overlap)", s, s.Start, next))
			return false
		}
		if err := s.validate(&m.cfg); err != nil {
			errs = append(errs, err)
			return false
		}
		if s.Kind == KindShared && !s.Shared {
			errs = append(errs, fmt.Errorf("shared segment %v not marked shared", s))
		}
		if s.Start != m.cfg.Lo && mergeable(&prev, &s, m.cfg.FoldCase) {
			errs = append(errs, fmt.Errorf("adjacent segments %v and %v should have merged", prev, s))
		}
		switch {
		case s.Kind == KindFree:
			nfree++
			freeList = append(freeList, s)
		case s.Kind.Owned():
			nowned++
		}
		prev = s
		next = s.End
		return true
	})
	if len(errs) == 0 && next != m.cfg.Hi {
		errs = append(errs, fmt.Errorf("segments end at %#x, want %#x", next, m.cfg.Hi))
	}
	if nowned != m.nowned {
		errs = append(errs, fmt.Errorf("owned count %d, want %d", m.nowned, nowned))
	}
	if s := m.gaps.check(); s != "" {
		errs = append(errs, fmt.Errorf("gap index: %s", s))
	}
	if m.gaps.n != nfree {
		errs = append(errs, fmt.Errorf("gap index holds %d gaps, map %d free segments", m.gaps.n, nfree))
	} else {
		i := 0
		m.gaps.walk(func(n *gapNode) {
			if i < len(freeList) && (freeList[i].Start != n.start || freeList[i].End != n.end) {
				errs = append(errs, fmt.Errorf("gap index has [%#x-%#x), map has free %v", n.start, n.end, freeList[i]))
			}
			i++
		})
	}
	if len(errs) > 0 {
		return fmt.Errorf("aspacem: invariant broken: %w", errors.Join(errs...))
	}
	return nil
}
