package aspacem

import (
	"fmt"

	"github.com/reachvm/reachvm/mem"
)

// Refresh re-reads the kernel's view of the address space and makes every
// range reachvm does not own (free and foreign segments) match it: regions
// the kernel reports there become KindForeign segments, the rest free.
// Owned segments are never touched, whatever the kernel says about them:
// that is SyncCheck's business.
//
// Refresh holds the map's lock while it reads the kernel. Callers change
// the kernel first and Update after, so a read made under the lock is never
// older than the map it is applied to (an unmap recorded as free just
// before could otherwise come back as a stale foreign mapping).
//
// Names the OS reports are recorded with odd bytes escaped as \xNN (see
// Segment.Name). Refresh fails, changing nothing, if the OS reports a
// region that is not page aligned, or regions out of order.
//
// Refresh costs O(n + r log n) for n segments and r kernel regions, plus
// the read itself; runs that already match the kernel are left alone.
func (m *Map) Refresh(os mem.OS) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	regions, err := os.Regions(m.cfg.Lo, m.cfg.Hi)
	if err != nil {
		return fmt.Errorf("aspacem: refresh: %w", err)
	}
	foreign, err := m.foreignSegments(regions)
	if err != nil {
		return err
	}

	// The runs of non-owned segments, computed before any change.
	type run struct{ lo, hi uintptr }
	var runs []run
	m.ascendLocked(0, 0, func(s *Segment) bool {
		if s.Kind.Owned() {
			return true
		}
		if n := len(runs); n > 0 && runs[n-1].hi == s.Start {
			runs[n-1].hi = s.End
		} else {
			runs = append(runs, run{s.Start, s.End})
		}
		return true
	})

	fi := 0
	for _, r := range runs {
		// Skip the foreign regions wholly below this run.
		for fi < len(foreign) && foreign[fi].End <= r.lo {
			fi++
		}
		want := make([]Segment, 0, 4)
		next := r.lo
		for j := fi; j < len(foreign) && foreign[j].Start < r.hi; j++ {
			f := foreign[j].clip(max(foreign[j].Start, r.lo), min(foreign[j].End, r.hi))
			if f.Start > next {
				want = append(want, Segment{Start: next, End: f.Start, Kind: KindFree})
			}
			want = append(want, f)
			next = f.End
		}
		if next < r.hi {
			want = append(want, Segment{Start: next, End: r.hi, Kind: KindFree})
		}
		if m.runMatchesLocked(r.lo, r.hi, want) {
			continue
		}
		for _, w := range want {
			m.updateLocked(w)
		}
	}
	return nil
}

// foreignSegments converts the kernel's regions into valid KindForeign
// segments, sorted and clipped to the map's bounds.
func (m *Map) foreignSegments(regions []mem.Region) ([]Segment, error) {
	out := make([]Segment, 0, len(regions))
	var prevEnd uintptr
	for _, r := range regions {
		if r.State == mem.StateFree {
			continue
		}
		if r.Start%m.cfg.PageSize != 0 || r.End%m.cfg.PageSize != 0 || r.Start >= r.End {
			return nil, fmt.Errorf("aspacem: refresh: OS reports a malformed region [%#x-%#x)", r.Start, r.End)
		}
		if r.Start < prevEnd {
			return nil, fmt.Errorf("aspacem: refresh: OS reports overlapping or unsorted region [%#x-%#x)", r.Start, r.End)
		}
		prevEnd = r.End
		lo, hi := max(r.Start, m.cfg.Lo), min(r.End, m.cfg.Hi)
		if lo >= hi {
			continue
		}
		s := Segment{
			Start: r.Start, End: r.End, Kind: KindForeign,
			Prot: r.Prot & mem.ProtRWX, Name: sanitizeText(r.Name), Offset: r.Offset,
			Shared: r.Shared, Dev: r.Dev, Inode: r.Inode,
		}
		if s.Name == "" || s.Offset%uint64(m.cfg.PageSize) != 0 || s.Offset+uint64(s.End-s.Start) < s.Offset {
			// Anonymous memory has no offset; a malformed one is
			// not worth failing the whole read for.
			s.Offset = 0
		}
		s = s.clip(lo, hi)
		if err := s.validate(&m.cfg); err != nil {
			return nil, fmt.Errorf("aspacem: refresh: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// runMatchesLocked reports whether [lo, hi) already holds exactly the
// segments want would produce (up to merging).
//
// Preconditions: m.mu is held; want covers [lo, hi) in order.
func (m *Map) runMatchesLocked(lo, hi uintptr, want []Segment) bool {
	i := 0
	ok := true
	m.ascendLocked(lo, hi, func(s *Segment) bool {
		// s must be exactly the merge of want[i], want[i+1], ...
		if i >= len(want) || want[i].Start != s.Start {
			ok = false
			return false
		}
		w := want[i]
		i++
		for i < len(want) && mergeable(&w, &want[i], m.cfg.FoldCase) {
			w.End = want[i].End
			i++
		}
		if w != *s {
			ok = false
		}
		return ok
	})
	return ok && i == len(want)
}
