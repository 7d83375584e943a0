//go:build linux

package bench

import "testing"

// The Linux strategies run on the real backend.
func TestMatrixLinux(t *testing.T) {
	rows, err := Run(Config{Backend: "linux", Trials: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5*len(WorkloadNames) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r.FailedTrials != 0 || r.Unreachable != 0 || r.PostPlaced != r.PostTried {
			t.Errorf("%+v", r)
		}
		fixed := r.Strategy == "linux-fixed" || r.Strategy == "vmm-linear" || r.Strategy == "linux-spill"
		if fixed != (r.RaceWindows == 0) {
			t.Errorf("%s: %d race windows", r.Strategy, r.RaceWindows)
		}
	}
}
