package bench

import (
	"bytes"
	"testing"
)

// The same seed gives the same table, byte for byte.
func TestDeterministic(t *testing.T) {
	run := func() []byte {
		rows, err := Run(Config{Backend: "sim", Trials: 3, Seed: 42, RaceRate: 10})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := WriteTable(&b, rows); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := run(), run()
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs differ:\n%s\n%s", a, b)
	}
	if len(a) < 500 {
		t.Fatalf("table too short:\n%s", a)
	}
}

// The sim matrix shows the strategies' signatures.
func TestMatrixSignatures(t *testing.T) {
	rows, err := Run(Config{Backend: "sim", Trials: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Row{}
	for _, r := range rows {
		if r.Workload == "dr" {
			by[r.Strategy] = r
		}
	}
	if r := by["A"]; r.PostPlaced != 0 || r.InitPlaced == 0 {
		t.Errorf("A: %+v", r)
	}
	if r := by["linux-fixed"]; r.RaceWindows != 0 || r.FailedTrials != 0 {
		t.Errorf("linux-fixed: %+v", r)
	}
	if r := by["D"]; r.MaxObjects < 3000 || r.FailedTrials != 0 {
		t.Errorf("D: %+v", r)
	}
	if r := by["linux-munmap"]; r.RaceWindows == 0 || r.RaceLosses != 0 {
		t.Errorf("linux-munmap: %+v", r)
	}
	// vmm's grid is D: the same libraries fit, at init and after.
	if r, d := by["vmm-grid"], by["D"]; r.FailedTrials != 0 || r.PostPlaced != d.PostPlaced || r.InitPlaced != d.InitPlaced {
		t.Errorf("vmm-grid: %+v\nD: %+v", r, d)
	}
	if r := by["vmm-linear"]; r.RaceWindows != 0 || r.FailedTrials != 0 {
		t.Errorf("vmm-linear: %+v", r)
	}
}
