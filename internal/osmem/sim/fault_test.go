package sim_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
)

// step is one mutating call of a scripted sequence. It may use what
// earlier steps left in the script's state.
type step struct {
	name string
	fn   func(s *sim.OS, st *scriptState) error
}

// scriptState carries addresses and objects between steps.
type scriptState struct {
	r, v, w, x, fv uintptr
	obj, file      osmem.Object
}

// script returns a sequence exercising every mutating call under rules.
func script(rules osmem.Rules, path string) []step {
	const p = 4 << 10
	g := uintptr(p)
	if rules == osmem.RulesWindows {
		g = 64 << 10
	}
	steps := []step{
		{"CreateShared", func(s *sim.OS, st *scriptState) (err error) {
			st.obj, err = s.CreateShared("fi", uint64(2*g))
			return err
		}},
		{"OpenFile", func(s *sim.OS, st *scriptState) (err error) {
			st.file, err = s.OpenFile(path)
			return err
		}},
		{"Reserve", func(s *sim.OS, st *scriptState) (err error) {
			st.r, err = s.Reserve(0, 4*g, osmem.Hint)
			return err
		}},
		{"Commit", func(s *sim.OS, st *scriptState) error { return s.Commit(st.r+g, g, osmem.ProtRW) }},
		{"Protect", func(s *sim.OS, st *scriptState) error { return s.Protect(st.r+g, p, osmem.ProtRead) }},
		{"Decommit", func(s *sim.OS, st *scriptState) error { return s.Decommit(st.r+g, p) }},
		{"MapObject RX", func(s *sim.OS, st *scriptState) (err error) {
			st.v, err = s.MapObject(st.obj, 0, 0, 2*g, osmem.ProtRX, osmem.Hint)
			return err
		}},
		{"MapObject RW", func(s *sim.OS, st *scriptState) (err error) {
			st.w, err = s.MapObject(st.obj, 0, 0, 2*g, osmem.ProtRW, osmem.Hint)
			return err
		}},
		{"Reserve small", func(s *sim.OS, st *scriptState) (err error) {
			st.x, err = s.Reserve(0, g, osmem.Hint)
			return err
		}},
		{"Unmap RW", func(s *sim.OS, st *scriptState) error { return s.Unmap(st.w, 2*g) }},
		{"Release small", func(s *sim.OS, st *scriptState) error { return s.Release(st.x, g) }},
		{"MapObject file", func(s *sim.OS, st *scriptState) (err error) {
			st.fv, err = s.MapObject(st.file, 0, 0, p, osmem.ProtRead, osmem.Hint)
			return err
		}},
	}
	if rules == osmem.RulesLinux {
		steps = append(steps,
			step{"MapObject Fixed", func(s *sim.OS, st *scriptState) error {
				_, err := s.MapObject(st.obj, 0, st.r, g, osmem.ProtRead, osmem.Fixed)
				return err
			}},
			step{"Reserve Fixed", func(s *sim.OS, st *scriptState) error {
				_, err := s.Reserve(st.r+g, 2*g, osmem.Fixed)
				return err
			}},
			step{"Release part", func(s *sim.OS, st *scriptState) error { return s.Release(st.r, 2*g) }},
			step{"Release rest", func(s *sim.OS, st *scriptState) error { return s.Release(st.r, 4*g) }},
		)
	} else {
		steps = append(steps,
			step{"Release", func(s *sim.OS, st *scriptState) error { return s.Release(st.r, 4*g) }},
			step{"MapObject Exact", func(s *sim.OS, st *scriptState) error {
				_, err := s.MapObject(st.obj, 0, st.r, g, osmem.ProtRead, osmem.Exact)
				return err
			}},
			step{"Unmap slot", func(s *sim.OS, st *scriptState) error { return s.Unmap(st.r, g) }},
		)
	}
	return append(steps,
		step{"Unmap file", func(s *sim.OS, st *scriptState) error { return s.Unmap(st.fv, p) }},
		step{"Unmap RX", func(s *sim.OS, st *scriptState) error { return s.Unmap(st.v, 2*g) }},
	)
}

// tempFile writes a small file for OpenFile and returns its path.
func tempFile(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "simtest-*")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "f")
	t.Cleanup(func() { os.Remove(path); os.Remove(dir) })
	if err := os.WriteFile(path, make([]byte, 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var bothRules = []osmem.Rules{osmem.RulesLinux, osmem.RulesWindows}

// TestFaultInjectionHasNoEffect fails each mutating call of a script in
// turn and checks that the failed call changed nothing, counted once, and
// failed with the class and number asked for.
func TestFaultInjectionHasNoEffect(t *testing.T) {
	path := tempFile(t)
	classes := []error{osmem.ErrInjected, osmem.ErrNoMemory, osmem.ErrExists, osmem.ErrNotMapped, osmem.ErrInvalid}
	for _, rules := range bothRules {
		t.Run(rules.String(), func(t *testing.T) {
			steps := script(rules, path)
			// A clean run: every step succeeds, one call each, and
			// everything is undone at the end.
			s := sim.New(rules, sim.Options{})
			var st scriptState
			for i, sp := range steps {
				if err := sp.fn(s, &st); err != nil {
					t.Fatalf("clean run, step %d %s: %v", i, sp.name, err)
				}
				if s.Calls() != i+1 {
					t.Fatalf("after step %d Calls() = %d", i, s.Calls())
				}
			}
			if snap := s.Snapshot(); len(snap) != 0 {
				t.Fatalf("clean run left %v", snap)
			}

			for n := 1; n <= len(steps); n++ {
				class := classes[n%len(classes)]
				s := sim.New(rules, sim.Options{})
				s.FailCall(n, class)
				var st scriptState
				injected := 0
				for i, sp := range steps {
					before, calls := s.Snapshot(), s.Calls()
					err := sp.fn(s, &st)
					if s.Calls() != calls+1 {
						t.Fatalf("n=%d step %s: Calls() went from %d to %d", n, sp.name, calls, s.Calls())
					}
					if err := s.Check(); err != nil {
						t.Fatalf("n=%d step %s: %v", n, sp.name, err)
					}
					var oe *osmem.Error
					isInjected := errors.As(err, &oe) && strings.Contains(oe.Detail, "injected")
					if i+1 != n {
						if isInjected {
							t.Fatalf("n=%d: step %d %s failed with an injected fault: %v", n, i+1, sp.name, err)
						}
						continue
					}
					injected++
					if !isInjected || !errors.Is(err, class) || oe.Class != class {
						t.Fatalf("n=%d step %s: %v, want an injected %v", n, sp.name, err, class)
					}
					if want := injectedCode(rules, class); oe.Code != want {
						t.Errorf("n=%d step %s: code %d, want %d", n, sp.name, oe.Code, want)
					}
					if after := s.Snapshot(); !reflect.DeepEqual(before, after) {
						t.Fatalf("n=%d step %s: failed call changed the state:\nbefore %v\nafter  %v", n, sp.name, before, after)
					}
				}
				if injected != 1 {
					t.Fatalf("n=%d: %d injected failures", n, injected)
				}
			}
		})
	}
}

// injectedCode is the OS number an injected fault of class carries.
func injectedCode(rules osmem.Rules, class error) uintptr {
	w := rules == osmem.RulesWindows
	switch class {
	case osmem.ErrNoMemory:
		if w {
			return osmem.WinErrorNotEnoughMemory
		}
		return 12
	case osmem.ErrExists:
		if w {
			return osmem.WinErrorInvalidAddress
		}
		return 17
	case osmem.ErrNotMapped:
		if w {
			return osmem.WinErrorInvalidAddress
		}
		return 12
	case osmem.ErrInvalid:
		if w {
			return osmem.WinErrorInvalidParameter
		}
		return 22
	}
	return 0
}

// TestFaultInjectionDeterministic runs the same faulted script twice and
// expects identical errors and states.
func TestFaultInjectionDeterministic(t *testing.T) {
	path := tempFile(t)
	for _, rules := range bothRules {
		run := func() (string, []osmem.Region) {
			s := sim.New(rules, sim.Options{Seed: 7})
			s.FailCall(3, osmem.ErrNoMemory)
			s.FailCall(7, nil)
			var st scriptState
			var log strings.Builder
			for _, sp := range script(rules, path) {
				fmt.Fprintf(&log, "%s: %v\n", sp.name, sp.fn(s, &st))
			}
			return log.String(), s.Snapshot()
		}
		l1, s1 := run()
		l2, s2 := run()
		if l1 != l2 || !reflect.DeepEqual(s1, s2) {
			t.Errorf("%v: two runs differ:\n%s\n%s", rules, l1, l2)
		}
		if !strings.Contains(l1, "injected fault at call 3") || !strings.Contains(l1, "injected fault at call 7") {
			t.Errorf("%v: faults not reported:\n%s", rules, l1)
		}
	}
}

// TestFailFromAndClear checks persistent faults, their clearing, and that
// FailCall faults fire once.
func TestFailFromAndClear(t *testing.T) {
	s := sim.New(osmem.RulesLinux, sim.Options{})
	s.FailCall(2, osmem.ErrNoMemory)
	if _, err := s.Reserve(0, 4096, osmem.Hint); err != nil {
		t.Fatalf("call 1: %v", err)
	}
	if _, err := s.Reserve(0, 4096, osmem.Hint); !errors.Is(err, osmem.ErrNoMemory) || osmem.Code(err) != 12 {
		t.Fatalf("call 2: %v, want injected ENOMEM", err)
	}
	if _, err := s.Reserve(0, 4096, osmem.Hint); err != nil {
		t.Fatalf("call 3 (fault already fired): %v", err)
	}
	s.FailFrom(2, nil)
	if err := s.Release(0x10000, 4096); err != nil {
		t.Fatalf("call 4: %v", err)
	}
	for i := range 3 {
		if err := s.Release(0x10000, 4096); !errors.Is(err, osmem.ErrInjected) {
			t.Fatalf("call %d after FailFrom: %v", 5+i, err)
		}
	}
	if _, err := s.CreateShared("x", 4096); !errors.Is(err, osmem.ErrInjected) {
		t.Fatalf("CreateShared after FailFrom: %v", err)
	}
	s.ClearFaults()
	if _, err := s.CreateShared("x", 4096); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
	if got := s.Calls(); got != 9 {
		t.Errorf("Calls() = %d, want 9", got)
	}
	// Queries are not mutating calls.
	s.Query(0x10000)
	s.Regions(0, 1<<40)
	if got := s.Calls(); got != 9 {
		t.Errorf("Calls() after queries = %d, want 9", got)
	}
	// The two reservations are adjacent (top-down placement) and merge,
	// as the kernel's VMAs would.
	if snap := s.Snapshot(); len(snap) != 1 || snap[0].Size() != 2*4096 {
		t.Errorf("Snapshot: %v, want the two reservations as one region", snap)
	}
}
