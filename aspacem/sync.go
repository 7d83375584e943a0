package aspacem

import (
	"fmt"
	"strings"

	"github.com/reachvm/reachvm/mem"
)

// Mismatch is one difference between aspacem's map and the kernel's view,
// over a maximal range where it is the same difference.
type Mismatch struct {
	// What names the difference: "kernel has no mapping", "protection
	// differs", "kernel maps a file where aspacem has anon", "name
	// differs", "offset differs", "inode differs".
	What string
	// Start and End bound the range it holds over: [Start, End).
	Start, End uintptr
	// Expected is what aspacem records there, Found what the kernel
	// reports. For "offset differs" both are the offsets at Start.
	Expected, Found string
}

// String formats m on one line.
func (m Mismatch) String() string {
	return fmt.Sprintf("[%#x-%#x) %s: aspacem has %s, kernel has %s", m.Start, m.End, m.What, m.Expected, m.Found)
}

// SyncCheck compares the map with the kernel's view (os.Regions) over every
// range reachvm owns (the owned segments, adjacent ones coalesced) and
// returns every difference: Valgrind's sync check, restricted to what
// reachvm vouches for (foreign segments are only a cache of the kernel's
// view, refreshed by Refresh). A nil slice means the views agree. The
// error is the OS's, if reading its view failed.
//
// The kernel merges adjacent mappings with equal attributes (and Windows
// splits what reachvm thinks of as one), so the two views are compared as
// runs of pages: each page is judged by the segment and the region
// covering it, and adjacent pages with the same difference make one
// Mismatch.
//
// Rules, per page covered by owned segment s and kernel region r:
//
//   - No region (or a free one): "kernel has no mapping".
//   - Classes: a reservation and anonymous memory with no access are the
//     same class, "anon", unless Config.Rules is RulesWindows (Linux
//     reports both as PROT_NONE private anonymous memory; Windows tells
//     MEM_RESERVE from committed PAGE_NOACCESS). Other classes: anon, a
//     file (a named private view), a shared object (a shared view). If
//     they differ the mismatch is "kernel maps X where aspacem has Y" and
//     nothing else is compared on that page.
//   - Otherwise "protection differs" if the protections differ.
//   - For views, "name differs" unless the names match: the kernel's
//     " (deleted)" suffix and a "/memfd:" prefix (on either side) are
//     ignored; under FoldCase names compare case-insensitively with '\'
//     as '/'; a relative name matches any kernel path ending in "/" plus
//     it; under RulesWindows a name with a drive letter matches a kernel
//     path (such as a \Device\HarddiskVolumeN one) ending in the rest, and
//     a shared view matches a nameless region (VirtualQuery does not name
//     pagefile-backed sections); a KindShared segment with no name
//     matches any name.
//   - For views, "offset differs" if the file offsets differ (not under
//     RulesWindows: VirtualQuery does not report offsets).
//   - "inode differs" if s records a non-zero inode (or device) and the
//     kernel's differs.
//
// SyncCheck holds the map's lock while it reads the kernel, so that the
// map does not change under the comparison.
func (m *Map) SyncCheck(os mem.OS) ([]Mismatch, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	owned := make([]Segment, 0, m.nowned)
	m.ascendLocked(0, 0, func(s *Segment) bool {
		if s.Kind.Owned() {
			owned = append(owned, *s)
		}
		return true
	})
	if len(owned) == 0 {
		return nil, nil
	}
	regs, err := os.Regions(owned[0].Start, owned[len(owned)-1].End)
	if err != nil {
		return nil, fmt.Errorf("aspacem: sync check: %w", err)
	}
	c := syncChecker{cfg: &m.cfg}
	j := 0
	for i := range owned {
		s := &owned[i]
		for x := s.Start; x < s.End; {
			for j < len(regs) && (regs[j].End <= x || regs[j].State == mem.StateFree) {
				j++
			}
			y := s.End
			var r *mem.Region
			if j < len(regs) && regs[j].Start <= x {
				r = &regs[j]
				y = min(y, r.End)
			} else if j < len(regs) && regs[j].Start < y {
				y = regs[j].Start
			}
			c.compare(s, r, x, y)
			x = y
		}
	}
	return c.out, nil
}

// syncChecker accumulates mismatches, coalescing adjacent equal ones.
type syncChecker struct {
	cfg *Config
	out []Mismatch
	// delta is, for each entry of out that is an offset mismatch, the
	// kernel's offset minus aspacem's: adjacent ranges with the same
	// delta are one mismatch.
	delta []uint64
}

func (c *syncChecker) add(what string, x, y uintptr, expected, found string, delta uint64) {
	if n := len(c.out); n > 0 {
		l := &c.out[n-1]
		if l.End == x && l.What == what {
			if what == whatOffset {
				if c.delta[n-1] == delta {
					l.End = y
					return
				}
			} else if l.Expected == expected && l.Found == found {
				l.End = y
				return
			}
		}
	}
	c.out = append(c.out, Mismatch{What: what, Start: x, End: y, Expected: expected, Found: found})
	c.delta = append(c.delta, delta)
}

const whatOffset = "offset differs"

// Classes of memory SyncCheck tells apart.
const (
	classReservation = "a reservation"
	classAnon        = "anon"
	classFile        = "a file"
	classShared      = "a shared object"
)

func (c *syncChecker) segClass(s *Segment) string {
	switch s.Kind {
	case KindReservation:
		if c.cfg.Rules == mem.RulesWindows {
			return classReservation
		}
		return classAnon
	case KindAnon:
		return classAnon
	case KindFile:
		return classFile
	}
	return classShared
}

func (c *syncChecker) regionClass(r *mem.Region) string {
	switch {
	case r.State == mem.StateReserved && !(r.Type == mem.TypeMapped && r.Shared):
		// (Reserved pages of a view are a SEC_RESERVE section's
		// uncommitted ones: the shared object's, below.)
		if c.cfg.Rules == mem.RulesWindows {
			return classReservation
		}
		return classAnon
	case r.Shared:
		return classShared
	case r.Type != mem.TypeMapped && r.Type != mem.TypeImage && (r.Name == "" || r.Name[0] == '['):
		// Anonymous, possibly with a Linux pseudo-name such as
		// "[heap]" or "[anon:NAME]".
		return classAnon
	}
	return classFile
}

func describeSeg(s *Segment, class string) string {
	d := class + " " + s.Prot.String()
	if s.Name != "" {
		d += " " + s.Name
	}
	return d
}

func describeRegion(r *mem.Region, class string) string {
	d := class + " " + r.Prot.String()
	if r.Name != "" {
		d += " " + r.Name
	}
	return d
}

// compare records the differences between s and r (nil: no mapping) over
// [x, y), which both cover.
func (c *syncChecker) compare(s *Segment, r *mem.Region, x, y uintptr) {
	sc := c.segClass(s)
	if r == nil {
		c.add("kernel has no mapping", x, y, describeSeg(s, sc), "free", 0)
		return
	}
	rc := c.regionClass(r)
	if sc != rc {
		c.add(fmt.Sprintf("kernel maps %s where aspacem has %s", rc, sc), x, y, describeSeg(s, sc), describeRegion(r, rc), 0)
		return
	}
	if s.Prot != r.Prot {
		c.add("protection differs", x, y, s.Prot.String(), r.Prot.String(), 0)
	}
	if sc == classFile || sc == classShared {
		if !c.namesMatch(s, r.Name) {
			c.add("name differs", x, y, quoteName(s.Name), quoteName(r.Name), 0)
		}
		if c.cfg.Rules != mem.RulesWindows {
			want := s.Offset + uint64(x-s.Start)
			got := r.Offset + uint64(x-r.Start)
			if want != got {
				c.add(whatOffset, x, y, fmt.Sprintf("%#x", want), fmt.Sprintf("%#x", got), got-want)
			}
		}
	}
	if (s.Inode != 0 && s.Inode != r.Inode) || (s.Dev != 0 && s.Dev != r.Dev) {
		c.add("inode differs", x, y, fmt.Sprintf("dev %#x inode %d", s.Dev, s.Inode), fmt.Sprintf("dev %#x inode %d", r.Dev, r.Inode), 0)
	}
}

func quoteName(n string) string {
	if n == "" {
		return "no name"
	}
	return fmt.Sprintf("%q", n)
}

// namesMatch applies SyncCheck's name rules to an owned view s and the
// kernel's name for it.
func (c *syncChecker) namesMatch(s *Segment, found string) bool {
	windows := c.cfg.Rules == mem.RulesWindows
	if s.Kind == KindShared && (s.Name == "" || (windows && found == "")) {
		return true
	}
	e := normName(s.Name, c.cfg.FoldCase)
	f := normName(strings.TrimSuffix(found, " (deleted)"), c.cfg.FoldCase)
	if e == f {
		return true
	}
	if e == "" || f == "" {
		return false
	}
	if !isAbs(e) {
		return strings.HasSuffix(f, "/"+e)
	}
	if windows && len(e) > 2 && e[1] == ':' && e[2] == '/' {
		return strings.HasSuffix(f, e[2:])
	}
	return false
}

// normName strips a memfd prefix and, under fold, lower-cases the name and
// turns backslashes into slashes.
func normName(n string, fold bool) string {
	n = strings.TrimPrefix(n, "/memfd:")
	if fold {
		n = strings.ToLower(strings.ReplaceAll(n, `\`, "/"))
	}
	return n
}

func isAbs(n string) bool {
	return strings.HasPrefix(n, "/") || (len(n) > 1 && n[1] == ':')
}

// namesEqual reports whether two segment names are the same, ignoring case
// when fold is set.
func namesEqual(a, b string, fold bool) bool {
	return a == b || (fold && strings.EqualFold(a, b))
}
