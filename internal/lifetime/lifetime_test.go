package lifetime

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestRegistryOrder checks Drain's order (stage, then latest first), that
// untrack removes a dependent and may be called again, and that Add
// refuses after Drain while the drained dependents stay until untracked.
func TestRegistryOrder(t *testing.T) {
	var r Registry
	var untracks []func()
	for _, d := range []struct {
		stage int
		name  string
	}{{2, "c1"}, {0, "a1"}, {1, "b1"}, {0, "a2"}, {2, "c2"}, {1, "b2"}} {
		u, ok := r.Add(d.stage, d.name, func() error { return nil })
		if !ok {
			t.Fatalf("Add(%s) refused before Drain", d.name)
		}
		untracks = append(untracks, u)
	}
	untracks[2]() // b1
	untracks[2]()
	want := []string{"a2", "a1", "b2", "c2", "c1"}
	if got := r.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	var got []string
	for _, d := range r.Drain() {
		got = append(got, d.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Drain() = %v, want %v", got, want)
	}
	if !r.Closing() {
		t.Error("Closing() false after Drain")
	}
	if _, ok := r.Add(0, "late", func() error { return errors.New("late") }); ok {
		t.Error("Add succeeded after Drain")
	}
	untracks[1]() // a1
	if got := r.Names(); !slices.Equal(got, []string{"a2", "b2", "c2", "c1"}) {
		t.Errorf("after untracking a1: %v", got)
	}
}

// TestCloseAll closes in Drain's order, names a failing dependent, and
// takes an error matching done for a dependent already gone.
func TestCloseAll(t *testing.T) {
	var r Registry
	done := errors.New("closed")
	boom := errors.New("boom")
	var order []string
	add := func(stage int, name string, err error) {
		if _, ok := r.Add(stage, name, func() error { order = append(order, name); return err }); !ok {
			t.Fatalf("Add(%s) refused", name)
		}
	}
	add(1, "late", nil)
	add(0, "gone", fmt.Errorf("wrapped: %w", done))
	add(0, "broken", boom)
	errs := r.CloseAll("owner", done)
	if got := strings.Join(order, " "); got != "broken gone late" {
		t.Errorf("closed in order %q, want broken gone late", got)
	}
	if len(errs) != 1 || !errors.Is(errs[0], boom) || errs[0].Error() != "owner: closing broken: boom" {
		t.Errorf("errors %v, want one: owner: closing broken: boom", errs)
	}
	if _, ok := r.Add(0, "after", func() error { return nil }); ok {
		t.Error("Add accepted a dependent after CloseAll")
	}
}
