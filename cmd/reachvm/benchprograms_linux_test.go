//go:build linux && amd64

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/jit/kernels"
)

// TestBenchPrograms is the smoke test of `reachvm bench programs`: one
// tiny program (sha256sum of 160 KiB) and /bin/true, once each, through
// every runner installed, the PIE reachvm's run included. Each runner
// either has a time and a peak RSS or says why it failed; native,
// valgrind and qemu must run it.
func TestBenchPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := kernels.Program("spawn", kernels.PIE); err != nil {
		t.Skip(err) // no gcc: no peak RSS to check
	}
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip(err)
	}
	self := pieReachvm(t)
	var out, errb bytes.Buffer
	plot := filepath.Join(t.TempDir(), "p.svg")
	code := run([]string{"bench", "programs", "--json", "--only", "sha256sum", "--scale", "0.01", "--startup", "1",
		"--reachvm", self, "--plot", plot}, &out, &errb)
	if code != 0 {
		t.Fatalf("bench programs exited %d: %s", code, errb.String())
	}
	if svg, err := os.ReadFile(plot); err != nil || !bytes.Contains(svg, []byte("<svg")) {
		t.Errorf("plot: %v", err)
	}
	type row struct {
		Program   string
		Command   string
		Seconds   map[string]float64
		MaxRSSKiB map[string]int64 `json:"max_rss_kib"`
		Errors    map[string]string
	}
	var res struct {
		Runners     []string
		Startup     *row
		Programs    []row
		RSSMeasured bool `json:"rss_measured"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Programs) != 1 || res.Startup == nil || !res.RSSMeasured {
		t.Fatalf("bench JSON %q: %v", out.String(), err)
	}
	want := []string{"native", "reachvm"}
	for _, p := range []string{"valgrind", "qemu-x86_64"} {
		if _, err := exec.LookPath(p); err == nil {
			want = append(want, strings.TrimSuffix(p, "-x86_64"))
		} else {
			t.Logf("%s is not installed: not a runner", p)
		}
	}
	if strings.Join(res.Runners, " ") != strings.Join(want, " ") {
		t.Errorf("runners %q, want %q", res.Runners, want)
	}
	for _, r := range []row{*res.Startup, res.Programs[0]} {
		for _, name := range res.Runners {
			s, ran := r.Seconds[name]
			e, failed := r.Errors[name]
			switch {
			case ran == failed:
				t.Errorf("%s under %s: a time (%v) and an error (%q), or neither", r.Program, name, s, e)
			case failed && name != "reachvm":
				t.Errorf("%s under %s: %s", r.Program, name, e)
			case failed:
				t.Logf("%s under reachvm: %s", r.Program, e)
			case s <= 0 || r.MaxRSSKiB[name] <= 0:
				t.Errorf("%s under %s: %v s, %d KiB", r.Program, name, s, r.MaxRSSKiB[name])
			}
		}
	}
	if c := res.Programs[0].Command; c != "sha256sum text-167772.txt" {
		t.Errorf("command %q", c)
	}
}
