package vmm

import (
	"fmt"
	"math/bits"
)

// checkInvariants verifies every invariant of the allocator's structures
// (see extentAllocator) by walking them all: O(blocks + records). It
// returns the first violation found.
func (a *extentAllocator) checkInvariants() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.nblocks
	if want := (int(n) + 63) / 64; len(a.used) != want {
		return fmt.Errorf("bitmap has %d words, want %d", len(a.used), want)
	}
	if tail := n % 64; tail != 0 {
		if w := a.used[len(a.used)-1]; w&(^uint64(0)<<tail) != ^uint64(0)<<tail {
			return fmt.Errorf("bits past the last block are not all set: %#x", w)
		}
	}
	for w, v := range a.used {
		if got := a.summary[w>>6]&(1<<(w&63)) != 0; got != (v != 0) {
			return fmt.Errorf("summary bit of word %d is %v, word is %#x", w, got, v)
		}
	}
	for w := len(a.used); w < len(a.summary)*64; w++ {
		if a.summary[w>>6]&(1<<(w&63)) != 0 {
			return fmt.Errorf("summary bit %d past the bitmap is set", w)
		}
	}

	// Every record on a class list: right class, links consistent, its
	// blocks a maximal free run, tagged at both ends.
	listed := make(map[int32]bool)
	var listedBlocks uint32
	for c := 0; c < classCount; c++ {
		nonEmpty := a.heads[c] != noSpan
		if got := a.slMap[c>>slBits]&(1<<(c&(slCount-1))) != 0; got != nonEmpty {
			return fmt.Errorf("class %d: second-level bit %v, list non-empty %v", c, got, nonEmpty)
		}
		prev := int32(noSpan)
		for i := a.heads[c]; i != noSpan; i = a.spans[i].next {
			if i < 0 || int(i) >= len(a.spans) || listed[i] {
				return fmt.Errorf("class %d: record %d out of range or listed twice", c, i)
			}
			listed[i] = true
			s := a.spans[i]
			if s.prev != prev {
				return fmt.Errorf("class %d: record %d has prev %d, want %d", c, i, s.prev, prev)
			}
			prev = i
			if s.n == 0 || s.start+s.n > n || s.start+s.n < s.start {
				return fmt.Errorf("record %d: blocks [%d, +%d) empty or outside [0, %d)", i, s.start, s.n, n)
			}
			if classOf(s.n) != c {
				return fmt.Errorf("record %d of %d blocks listed in class %d, belongs in %d", i, s.n, c, classOf(s.n))
			}
			if !a.allClear(s.start, s.n) {
				return fmt.Errorf("record %d: blocks [%d, +%d) not all free in the bitmap", i, s.start, s.n)
			}
			if s.start > 0 && !a.isUsed(s.start-1) {
				return fmt.Errorf("record %d at block %d: the block before is free (not coalesced)", i, s.start)
			}
			if end := s.start + s.n; end < n && !a.isUsed(end) {
				return fmt.Errorf("record %d ending at block %d: the block after is free (not coalesced)", i, end)
			}
			if a.tags[s.start>>tagShift] == nil || a.tag(s.start) != i || a.tag(s.start+s.n-1) != i {
				return fmt.Errorf("record %d [%d, +%d): boundary tags do not name it", i, s.start, s.n)
			}
			listedBlocks += s.n
		}
	}
	for fl := 0; fl < flCount; fl++ {
		if got := a.flMap&(1<<fl) != 0; got != (a.slMap[fl] != 0) {
			return fmt.Errorf("first-level bit %d is %v, second-level map %#x", fl, got, a.slMap[fl])
		}
	}
	if a.flMap>>flCount != 0 {
		return fmt.Errorf("first-level bits past %d set: %#x", flCount, a.flMap)
	}

	// Every free block is in a listed record (the records are disjoint,
	// so equal counts mean they cover the free blocks exactly).
	var clear uint32
	for _, v := range a.used {
		clear += uint32(64 - bits.OnesCount64(v))
	}
	if clear != a.free || listedBlocks != a.free {
		return fmt.Errorf("free counter %d, clear bits %d, blocks in listed records %d", a.free, clear, listedBlocks)
	}

	// The other records are exactly the recycled ones.
	recycled := 0
	for i := a.recycled; i != noSpan; i = a.spans[i].next {
		if i < 0 || int(i) >= len(a.spans) || listed[i] {
			return fmt.Errorf("recycled record %d out of range or also listed", i)
		}
		listed[i] = true
		recycled++
		if recycled > len(a.spans) {
			return fmt.Errorf("recycled list loops")
		}
	}
	if len(listed) != len(a.spans) {
		return fmt.Errorf("%d records, %d listed or recycled: some leaked", len(a.spans), len(listed))
	}
	return nil
}
