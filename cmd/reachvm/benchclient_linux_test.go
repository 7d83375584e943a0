//go:build linux && amd64

package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/jit/kernels"
)

// saneRatio reports whether a tool's seconds and ratio to native are a
// measurement: positive, finite, and the ratio the seconds make.
func saneRatio(seconds, native, ratio float64) bool {
	return seconds > 0 && native > 0 && !math.IsInf(seconds, 0) &&
		math.Abs(ratio-seconds/native) <= 1e-9*ratio
}

// TestBenchKernelsClient: `bench kernels --client inscount,bbcount`, in
// a quick mode, has a tool for each client after reachvm's, in the
// JSON, the table and the plot, each with a time and its ratio to
// native.
func TestBenchKernelsClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := kernels.Program("kernels", kernels.Exec); err != nil {
		t.Skip(err)
	}
	self := pieReachvm(t)
	quick := []string{"bench", "kernels", "--runs", "1", "--seconds", "0.02", "--only", "k_fib", "--tools", "native,reachvm",
		"--client", "inscount,bbcount", "--reachvm", self}
	var out, errb bytes.Buffer
	plot := filepath.Join(t.TempDir(), "k.svg")
	if code := run(append(quick, "--json", "--plot", plot), &out, &errb); code != 0 {
		t.Fatalf("bench exited %d: %s", code, errb.String())
	}
	var res struct {
		Tools   []string
		Kernels []struct {
			Kernel         string
			Seconds, Ratio map[string]float64
		}
		Geomean map[string]float64
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Kernels) != 1 {
		t.Fatalf("bench JSON %q: %v", out.String(), err)
	}
	want := []string{"native", "reachvm", "reachvm+inscount", "reachvm+bbcount"}
	if !slices.Equal(res.Tools, want) {
		t.Errorf("tools %q, want %q", res.Tools, want)
	}
	k := res.Kernels[0]
	for _, tool := range want[1:] {
		if !saneRatio(k.Seconds[tool], k.Seconds["native"], k.Ratio[tool]) || math.Abs(res.Geomean[tool]-k.Ratio[tool]) > 1e-9*k.Ratio[tool] {
			t.Errorf("%s: %v s, ratio %v, geomean %v; native %v s", tool, k.Seconds[tool], k.Ratio[tool], res.Geomean[tool], k.Seconds["native"])
		}
	}
	if svg, err := os.ReadFile(plot); err != nil || !bytes.Contains(svg, []byte("reachvm+inscount")) || !bytes.Contains(svg, []byte("reachvm+bbcount")) {
		t.Errorf("the plot names no client series: %v", err)
	}
	out.Reset()
	if code := run(quick, &out, &errb); code != 0 {
		t.Fatalf("bench exited %d: %s", code, errb.String())
	}
	if header := strings.Fields(strings.Split(out.String(), "\n")[1]); !slices.Equal(header, append([]string{"kernel"}, want...)) {
		t.Errorf("table header %q, want kernel and %q", header, want)
	}
}

// TestBenchProgramsClient: `bench programs --client inscount`, on one
// tiny program, has the runner reachvm+inscount after reachvm, with a
// time and a peak RSS for the program and for the start-up.
func TestBenchProgramsClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := kernels.Program("spawn", kernels.PIE); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip(err)
	}
	self := pieReachvm(t)
	var out, errb bytes.Buffer
	code := run([]string{"bench", "programs", "--json", "--only", "sha256sum", "--scale", "0.01", "--startup", "1",
		"--tools", "native,reachvm", "--client", "inscount", "--reachvm", self}, &out, &errb)
	if code != 0 {
		t.Fatalf("bench programs exited %d: %s", code, errb.String())
	}
	type row struct {
		Program   string
		Seconds   map[string]float64
		Ratio     map[string]float64
		MaxRSSKiB map[string]int64 `json:"max_rss_kib"`
		Errors    map[string]string
	}
	var res struct {
		Runners  []string
		Startup  *row
		Programs []row
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Programs) != 1 || res.Startup == nil {
		t.Fatalf("bench JSON %q: %v", out.String(), err)
	}
	if want := []string{"native", "reachvm", "reachvm+inscount"}; !slices.Equal(res.Runners, want) {
		t.Errorf("runners %q, want %q", res.Runners, want)
	}
	for _, r := range []row{*res.Startup, res.Programs[0]} {
		const c = "reachvm+inscount"
		if e, failed := r.Errors[c]; failed || r.Seconds[c] <= 0 || r.MaxRSSKiB[c] <= 0 {
			t.Errorf("%s under %s: %v s, %d KiB, error %q", r.Program, c, r.Seconds[c], r.MaxRSSKiB[c], e)
		}
	}
	if p := res.Programs[0]; !saneRatio(p.Seconds["reachvm+inscount"], p.Seconds["native"], p.Ratio["reachvm+inscount"]) {
		t.Errorf("sha256sum: reachvm+inscount %v s, ratio %v; native %v s", p.Seconds["reachvm+inscount"], p.Ratio["reachvm+inscount"], p.Seconds["native"])
	}
}
