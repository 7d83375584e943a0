package vmmtest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// Object is one thing a close-order test makes in a VMM and closes.
type Object struct {
	// Name names it in the test's cases.
	Name string
	// Parents name the objects whose close closes this one too (the VMM
	// is everyone's, implicitly; list the others: a unit's Code).
	Parents []string
	// Close closes it. It must return nil unless a parent closed first,
	// and then an error wrapping vmm.ErrClosed.
	Close func() error
	// Use uses it once after it closed, and returns nil if it behaved as
	// it should (typically: failed with an error wrapping
	// vmm.ErrClosed), else what went wrong.
	Use func() error
}

// World is what one case works on: a fresh VMM and the objects in it.
// Check, if set, runs after every object closed and before the VMM's
// footprint is checked (a finaliser's effect, say).
type World struct {
	VMM     *vmm.VMM
	Objects []Object
	Check   func() error
}

// Orders returns every ordered choice of k distinct indices below n: the
// k-permutations of n, n!/(n-k)! of them.
func Orders(n, k int) [][]int {
	var out [][]int
	used := make([]bool, n)
	cur := make([]int, 0, k)
	var walk func()
	walk = func() {
		if len(cur) == k {
			out = append(out, append([]int(nil), cur...))
			return
		}
		for i := range n {
			if !used[i] {
				used[i] = true
				cur = append(cur, i)
				walk()
				cur = cur[:len(cur)-1]
				used[i] = false
			}
		}
	}
	walk()
	return out
}

// CloseOrders runs, for every size in sizes, one subtest per ordered
// choice of that many of the objects build returns: a fresh world, the
// chosen objects closed in that order (each must succeed, or fail with
// vmm.ErrClosed exactly when the VMM or a parent closed before it), each
// of them used once after, then the VMM closed (closing what is left) and
// checked gone: aspacem in sync with the kernel and nothing of the VMM
// mapped. names lists the objects' names in the order build returns them;
// the VMM is one of them if its name is "vmm".
func CloseOrders(t *testing.T, names []string, sizes []int, build func(t *testing.T) World) {
	for _, k := range sizes {
		for _, order := range Orders(len(names), k) {
			var label []string
			for _, i := range order {
				label = append(label, names[i])
			}
			t.Run(strings.Join(label, ","), func(t *testing.T) {
				CloseInOrder(t, names, order, build(t))
			})
		}
	}
}

// CloseInOrder is one case of CloseOrders: it closes the objects of w at
// the indices order lists, in that order, uses each once, closes the VMM
// and checks it gone.
func CloseInOrder(t *testing.T, names []string, order []int, w World) {
	t.Helper()
	if len(w.Objects) != len(names) {
		t.Fatalf("the world has %d objects, want %d (%v)", len(w.Objects), len(names), names)
	}
	byName := map[string]Object{}
	for i, o := range w.Objects {
		if o.Name != names[i] {
			t.Fatalf("object %d is %q, want %q", i, o.Name, names[i])
		}
		byName[o.Name] = o
	}
	foot := FootprintOf(w.VMM)
	closed := map[string]bool{}
	// gone reports whether o is closed already: by itself or through
	// the VMM or a parent, transitively.
	var gone func(o Object) bool
	gone = func(o Object) bool {
		if closed[o.Name] || (o.Name != "vmm" && closed["vmm"]) {
			return true
		}
		for _, p := range o.Parents {
			if gone(byName[p]) {
				return true
			}
		}
		return false
	}
	// kernel is what Unmapped said right after the VMM closed.
	var kernel error
	for _, i := range order {
		o := w.Objects[i]
		already := gone(o)
		if o.Name == "vmm" && !already {
			foot.Mark(w.VMM)
		}
		err := o.Close()
		if o.Name == "vmm" && !already {
			kernel = Unmapped(w.VMM, foot)
		}
		switch {
		case already && !errors.Is(err, vmm.ErrClosed):
			t.Errorf("closing %s after its VMM or a parent closed: %v, want an error wrapping vmm.ErrClosed", o.Name, err)
		case !already && err != nil:
			t.Errorf("closing %s: %v", o.Name, err)
		}
		closed[o.Name] = true
	}
	for _, i := range order {
		o := w.Objects[i]
		if err := o.Use(); err != nil {
			t.Errorf("using %s after it closed: %v", o.Name, err)
		}
	}
	if !closed["vmm"] {
		foot.Mark(w.VMM)
		if err := w.VMM.Close(); err != nil {
			t.Errorf("closing the VMM last: %v", err)
		}
		kernel = Unmapped(w.VMM, foot)
	}
	if kernel != nil {
		t.Errorf("after the VMM closed: %v", kernel)
	}
	if w.Check != nil {
		if err := w.Check(); err != nil {
			t.Error(err)
		}
	}
	Forgotten(t, w.VMM, foot, "after every close")
}

// WantClosed returns nil if err wraps vmm.ErrClosed, else an error saying
// what op returned instead.
func WantClosed(op string, err error) error {
	if errors.Is(err, vmm.ErrClosed) {
		return nil
	}
	return fmt.Errorf("%s: %v, want an error wrapping vmm.ErrClosed", op, err)
}
