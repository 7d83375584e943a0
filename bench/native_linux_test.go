//go:build linux

package bench

import (
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
)

// The race property on the real kernel: the intruder is a real
// MAP_FIXED_NOREPLACE mmap into the hole the munmap strategy opened.
func TestRaceLinux(t *testing.T) { raceProperty(t, osmem.Native()) }

// The Linux strategies run on the real backend.
func TestMatrixLinux(t *testing.T) {
	rows, err := Run(Config{Backend: "linux", Trials: 1, Seed: 1, RaceRate: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5*len(WorkloadNames) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r.Strategy == "linux-fixed" && (r.FailedTrials != 0 || r.RaceWindows != 0) {
			t.Errorf("%+v", r)
		}
	}
}
