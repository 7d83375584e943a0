package aspacem

import "github.com/reachvm/reachvm/mem"

// gapTree indexes the free segments of a Map for placement advice. It is a
// treap (a binary search tree keyed by gap start, heap-ordered by random
// priorities, so its expected height is O(log n) whatever order gaps are
// added in) in which every node also records the largest usable length in
// its subtree. That augmentation is what a btree keyed by size cannot give:
// it answers "the nearest gap left (or right) of address x that can hold
// size bytes" in O(log n) by descending from the root and skipping every
// subtree whose largest gap is too small.
//
// A gap's usable length is the length left once its start is rounded up to
// the granularity g: every placement Advise returns starts on a multiple
// of at least g (its end need only be page aligned), so a gap whose usable
// length is below the size can never hold it and is pruned, while one
// whose usable length is at least the size always holds a g-aligned
// placement.
//
// Invariants (checked by check):
//   - in-order traversal yields gaps by increasing start, disjoint and
//     non-adjacent (the Map merges adjacent free segments);
//   - a node's priority is >= its children's;
//   - n.max = max(n.usable, n.left.max, n.right.max), 0 for nil.
//
// gapTree is not safe for concurrent use; Map's mutex guards it.
type gapTree struct {
	root *gapNode
	n    int
	g    uintptr // granularity, a power of two
	rnd  uint64  // xorshift64 state for priorities
}

type gapNode struct {
	start, end  uintptr
	usable      uintptr // end minus start rounded up to g, or 0
	max         uintptr // largest usable in this subtree
	prio        uint64
	left, right *gapNode
}

func newGapTree(g uintptr) *gapTree {
	return &gapTree{g: g, rnd: 0x9e3779b97f4a7c15}
}

func (t *gapTree) usable(start, end uintptr) uintptr {
	s, ok := mem.AlignUp(start, t.g)
	if !ok || end <= s {
		return 0
	}
	return end - s
}

func (t *gapTree) nextPrio() uint64 {
	x := t.rnd
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	t.rnd = x
	return x
}

func nodeMax(n *gapNode) uintptr {
	if n == nil {
		return 0
	}
	return n.max
}

func (n *gapNode) fix() {
	m := n.usable
	if l := nodeMax(n.left); l > m {
		m = l
	}
	if r := nodeMax(n.right); r > m {
		m = r
	}
	n.max = m
}

// split divides n into the gaps starting below key and those starting at or
// above it.
func split(n *gapNode, key uintptr) (l, r *gapNode) {
	if n == nil {
		return nil, nil
	}
	if n.start < key {
		n.right, r = split(n.right, key)
		n.fix()
		return n, r
	}
	l, n.left = split(n.left, key)
	n.fix()
	return l, n
}

// merge joins l and r, every gap of l starting below every gap of r.
func merge(l, r *gapNode) *gapNode {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio >= r.prio:
		l.right = merge(l.right, r)
		l.fix()
		return l
	default:
		r.left = merge(l, r.left)
		r.fix()
		return r
	}
}

// insert adds the gap [start, end).
//
// Preconditions: it overlaps no gap in t.
func (t *gapTree) insert(start, end uintptr) {
	n := &gapNode{start: start, end: end, usable: t.usable(start, end), prio: t.nextPrio()}
	n.max = n.usable
	l, r := split(t.root, start)
	t.root = merge(merge(l, n), r)
	t.n++
}

// remove deletes the gap starting at start and reports whether there was
// one.
func (t *gapTree) remove(start uintptr) bool {
	l, r := split(t.root, start)
	var mid *gapNode
	if start+1 != 0 {
		mid, r = split(r, start+1)
	} else {
		mid, r = r, nil
	}
	t.root = merge(l, r)
	if mid != nil {
		t.n--
		return true
	}
	return false
}

// lastFit returns the gap with the largest start <= key whose usable length
// is at least size, or nil. O(height): the descent follows one path, and
// at most one more descent into a subtree known (by its max) to hold an
// answer.
func (t *gapTree) lastFit(key, size uintptr) *gapNode {
	return lastFit(t.root, key, size)
}

func lastFit(n *gapNode, key, size uintptr) *gapNode {
	for n != nil && n.max >= size {
		if n.start > key {
			n = n.left
			continue
		}
		// n.start <= key: the right subtree may hold later candidates.
		if r := lastFit(n.right, key, size); r != nil {
			return r
		}
		if n.usable >= size {
			return n
		}
		n = n.left
	}
	return nil
}

// firstFit returns the gap with the smallest start >= key whose usable
// length is at least size, or nil.
func (t *gapTree) firstFit(key, size uintptr) *gapNode {
	return firstFit(t.root, key, size)
}

func firstFit(n *gapNode, key, size uintptr) *gapNode {
	for n != nil && n.max >= size {
		if n.start < key {
			n = n.right
			continue
		}
		if l := firstFit(n.left, key, size); l != nil {
			return l
		}
		if n.usable >= size {
			return n
		}
		n = n.right
	}
	return nil
}

// floor returns the gap with the largest start <= key, whatever its size,
// or nil.
func (t *gapTree) floor(key uintptr) *gapNode {
	var best *gapNode
	for n := t.root; n != nil; {
		if n.start <= key {
			best = n
			n = n.right
		} else {
			n = n.left
		}
	}
	return best
}

// walk calls fn for every gap in address order.
func (t *gapTree) walk(fn func(n *gapNode)) {
	var rec func(n *gapNode)
	rec = func(n *gapNode) {
		if n == nil {
			return
		}
		rec(n.left)
		fn(n)
		rec(n.right)
	}
	rec(t.root)
}

// check verifies the invariants and returns a description of the first
// violation, or "".
func (t *gapTree) check() string {
	count := 0
	var prevEnd uintptr
	first := true
	var rec func(n *gapNode) string
	rec = func(n *gapNode) string {
		if n == nil {
			return ""
		}
		for _, c := range []*gapNode{n.left, n.right} {
			if c != nil && c.prio > n.prio {
				return "heap order broken"
			}
		}
		if s := rec(n.left); s != "" {
			return s
		}
		if n.start >= n.end {
			return "empty gap"
		}
		if !first && n.start <= prevEnd {
			return "gaps out of order, overlapping or adjacent"
		}
		first = false
		prevEnd = n.end
		count++
		if n.usable != t.usable(n.start, n.end) {
			return "stale usable length"
		}
		want := n.usable
		if m := nodeMax(n.left); m > want {
			want = m
		}
		if m := nodeMax(n.right); m > want {
			want = m
		}
		if n.max != want {
			return "stale subtree max"
		}
		return rec(n.right)
	}
	if s := rec(t.root); s != "" {
		return s
	}
	if count != t.n {
		return "count mismatch"
	}
	return ""
}
