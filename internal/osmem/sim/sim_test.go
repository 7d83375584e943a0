package sim_test

import (
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/osmemtest"
	"github.com/reachvm/reachvm/internal/osmem/sim"
)

// checked wraps a simulator so that its invariants are verified after the
// conformance suite is done with it.
func newChecked(rules osmem.Rules) func(t *testing.T) osmem.OS {
	return func(t *testing.T) osmem.OS {
		s := sim.New(rules, sim.Options{})
		t.Cleanup(func() {
			if err := s.Check(); err != nil {
				t.Errorf("invariants broken: %v", err)
			}
			if snap := s.Snapshot(); len(snap) != 0 {
				t.Errorf("simulator not empty at the end: %v", snap)
			}
		})
		return s
	}
}

func TestConformanceLinux(t *testing.T)   { osmemtest.Run(t, newChecked(osmem.RulesLinux)) }
func TestConformanceWindows(t *testing.T) { osmemtest.Run(t, newChecked(osmem.RulesWindows)) }
