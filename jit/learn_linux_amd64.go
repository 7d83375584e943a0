package jit

import (
	"encoding/binary"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// Lazy learning: an inline-cache site learns a target from the
// dispatcher, which costs an exit (a context switch out of the cache and
// back, 1 to 2 µs); a program's start-up runs tens of thousands of sites
// a few times each, most of them to targets that already have a fragment.
// So a site's learn path counts its visits and, until the count reaches
// learnAfter, looks the target up in the indirect-branch table instead
// of exiting; a target found there is entered with no exit. A hot site
// learns at its learnAfter-th visit, and from any miss it exits for
// anyway (a target with no fragment, or none in the table), where the
// dispatcher fills a slot and sets the count back to zero. (Entering
// every fragment into the indirect-branch table when installed, so that
// a target first reached by a direct branch is found too, saved no exit
// on python3's start-up: 29,829 exits against 29,886, measured with a
// return table since dropped.)
//
// The counters are 8 bytes each in the context's data slot (one per site
// translated since the last flush, up to maxVisitCounters; sites past
// that exit at each visit as before), counted flag-free:
//
//	mov  rcx, [visits+8*k]
//	lea  rcx, [rcx+1]
//	mov  [visits+8*k], rcx
//	lea  rcx, [rcx-learnAfter]
//	jrcxz learn
//	jmp  lookup

// learnAfter is the visit of a site's learn path at which it exits to
// learn its target. A visit that looks up costs some tens of cycles more
// than an inline-cache hit, an exit some thousands: past about a hundred
// visits a hot site has paid for its exit, and learning later costs it
// more than the exit saves (python3 -c pass: 31,930 exits with 8, 29,375
// with 128, 28,268 with 1,024; 37,219 learning at the first visit).
const learnAfter = 128

// maxVisitCounters bounds the visit counters: 256 KiB of the data slot,
// whose pages are touched as sites take them.
const maxVisitCounters = 1 << 15

// visitCounter allocates a visit counter, reporting false when none is
// left until the next flush.
func (m *Machine) visitCounter() (int32, bool) {
	if m.visitsUsed >= maxVisitCounters || m.learnNow {
		return 0, false
	}
	m.visitsUsed++
	return int32(m.visitsUsed - 1), true
}

// countVisit emits the count of a visit to counter k (see the top of the
// file), rcx free, and returns the jrcxz taken at the learnAfter-th,
// which the caller binds to the learn exit right after its own jump to
// the lookup (the jrcxz's rel8 reaches over it).
func (t *translator) countVisit(k int32) (amd64.Fixup, error) {
	a := t.a
	var errs firstErr
	try := errs.try
	c := t.ctx(t.m.lay.visits + 8*uintptr(k))
	try(a.MovLoad(amd64.RCX, c))
	try(a.Lea(amd64.RCX, amd64.M(amd64.RCX, 1)))
	try(a.MovStore(c, amd64.RCX))
	try(a.Lea(amd64.RCX, amd64.M(amd64.RCX, -learnAfter)))
	return a.Jrcxz(), errs.err
}

// resetVisits sets ic's visit count back to zero after it learned, so
// that it learns its next target at the next learnAfter-th visit.
func (m *Machine) resetVisits(ic *icSite) {
	if ic.visits >= 0 {
		binary.LittleEndian.PutUint64(m.mem[m.lay.visits+8*uintptr(ic.visits):], 0)
	}
}

// clearVisits zeroes the counters in use and frees them all (a flush).
func (m *Machine) clearVisits() {
	clear(m.mem[m.lay.visits : m.lay.visits+8*uintptr(m.visitsUsed)])
	m.visitsUsed = 0
}
