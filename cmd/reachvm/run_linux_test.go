//go:build linux && amd64

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/jit/kernels"
)

// runChildArgs returns the arguments of `reachvm run` when this test
// binary runs as reachvm for a test: started by runChild (REACHVM_RUN_ARGS
// set, the marker -test.run=^TestRunChild$), or re-executed by a program's
// execve that `run` follows (selfRun: run's arguments after "--"). The
// flags must be parsed.
func runChildArgs() ([]string, bool) {
	if a := os.Getenv("REACHVM_RUN_ARGS"); a != "" {
		return append([]string{"run"}, strings.Split(a, "\x1f")...), true
	}
	if fa := flag.Args(); len(fa) > 0 && fa[0] == "run" && len(os.Args) > 1 && strings.HasSuffix(os.Args[1], "TestRunChild$") {
		return fa, true
	}
	return nil, false
}

// runAsChild is reachvm's main for a test's child: TestMain calls it,
// on the main goroutine and so on the main thread (as reachvm's own main
// runs), before any test. A followed execve execs this test binary
// again.
func init() {
	asChild = func() (int, bool) {
		args, ok := runChildArgs()
		if !ok {
			return 0, false
		}
		return runAsChild(args), true
	}
}

func runAsChild(args []string) int {
	if os.Getenv("REACHVM_TEST_MIGRATE") != "" {
		// Chances for the scheduler to move the main goroutine to
		// another thread, which main's lock (run_linux.go) forbids:
		// without it, TestRunOnMainThread sees the program elsewhere.
		for range 20 {
			time.Sleep(time.Millisecond)
		}
	}
	selfRun = func() (string, []string) {
		return "/proc/self/exe", []string{os.Args[0], "-test.run=^TestRunChild$", "--", "run"}
	}
	return run(args, os.Stdout, os.Stderr)
}

func runChild(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunChild$")
	cmd.Env = append(os.Environ(), "REACHVM_RUN_ARGS="+strings.Join(args, "\x1f"), "RV=run")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestRun runs the hello program under `reachvm run` (ET_EXEC and static
// PIE): its output and exit status are the native ones.
func TestRun(t *testing.T) {
	for _, kind := range []string{kernels.Exec, kernels.PIE} {
		hello, err := kernels.Program("hello", kind)
		if errors.Is(err, kernels.ErrNoCompiler) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		native := exec.Command(hello, "4", "two words")
		native.Env = []string{"RV=run"}
		want, err := native.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 {
			t.Fatalf("native %s: %v", kind, err)
		}
		out, stderr, code := runChild(t, "--stats", hello, "4", "two words")
		if code != 4 || out != string(want) {
			t.Errorf("%s: status %d, output:\n%s\nwant 4 and:\n%s", kind, code, out, want)
		}
		checkStatsTable(t, kind, stderr, hello)
		// --json: the program's output unchanged, the counters as one
		// JSON object, the last line of stderr.
		out, stderr, code = runChild(t, "--json", hello, "4", "two words")
		if code != 4 || out != string(want) {
			t.Errorf("%s --json: status %d, output:\n%s", kind, code, out)
		}
		checkStatsJSON(t, kind, stderr, hello)
	}
	if _, stderr, code := runChild(t, filepath.Join(t.TempDir(), "missing")); code == 0 || !strings.Contains(stderr, "missing") {
		t.Errorf("a missing program: status %d, stderr %q", code, stderr)
	}
}

// TestBenchKernels runs `reachvm bench kernels` on two kernels, once each,
// natively and under reachvm run (valgrind and qemu are skipped: slow),
// and checks the JSON.
func TestBenchKernels(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := kernels.Program("kernels", kernels.Exec); err != nil {
		t.Skip(err)
	}
	// bench times `reachvm run` as a process: the command, built once
	// for the tests.
	self := pieReachvm(t)
	var out, errb bytes.Buffer
	plot := filepath.Join(t.TempDir(), "k.svg")
	code := run([]string{"bench", "kernels", "--json", "--runs", "1", "--seconds", "0.02", "--only", "k_fib,k_interp", "--tools", "native,reachvm", "--reachvm", self, "--plot", plot}, &out, &errb)
	if code != 0 {
		t.Fatalf("bench exited %d: %s", code, errb.String())
	}
	if svg, err := os.ReadFile(plot); err != nil || !bytes.Contains(svg, []byte("<svg")) {
		t.Errorf("plot: %v", err)
	}
	var res struct {
		Kernels []struct {
			Kernel string
			Ratio  map[string]float64
		}
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Kernels) != 2 {
		t.Fatalf("bench JSON %q: %v", out.String(), err)
	}
}

// checkStatsTable checks the --stats table: a header, then one row per
// counter with its name, an integer value and a unit, and sensible values
// for a program that ran.
func checkStatsTable(t *testing.T, kind, stderr, prog string) {
	t.Helper()
	if !strings.Contains(stderr, "reachvm run: "+prog+" exited 4\n") {
		t.Errorf("%s: --stats lacks the exit line:\n%s", kind, stderr)
	}
	_, table, ok := strings.Cut(stderr, "\ncounter ")
	if !ok {
		t.Fatalf("%s: --stats printed no table:\n%s", kind, stderr)
	}
	units := map[string]string{"fragments": "fragments", "blocks": "blocks", "instructions": "instructions", "exits": "exits",
		"ibl_misses": "exits", "links": "exits", "polymorphic_sites": "sites", "jump_tables": "sites", "slot_branches": "branches", "flushes": "flushes", "mangled_operands": "operands",
		"syscalls": "syscalls", "cache_bytes": "bytes", "signals": "signals", "signal_steps": "steps",
		"invalidated_fragments": "fragments", "code_writes": "writes", "write_protects": "pages", "forks": "processes",
		"threads": "threads", "heap_bytes": "bytes", "peak_rss_bytes": "bytes"}
	vals := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Errorf("%s: table row %q", kind, line)
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil || units[f[0]] != f[2] {
			t.Errorf("%s: table row %q: want name, integer, unit %q", kind, line, units[f[0]])
		}
		vals[f[0]] = v
	}
	if len(vals) != len(units) {
		t.Errorf("%s: table has %d counters, want %d:\n%s", kind, len(vals), len(units), stderr)
	}
	if vals["fragments"] == 0 || vals["instructions"] < vals["blocks"] || vals["blocks"] < vals["fragments"] || vals["syscalls"] == 0 || vals["cache_bytes"] == 0 ||
		vals["heap_bytes"] == 0 || vals["peak_rss_bytes"] < vals["cache_bytes"] {
		t.Errorf("%s: counters %v: want fragments > 0, instructions >= blocks >= fragments, syscalls, cache and heap bytes > 0, peak RSS >= cache bytes", kind, vals)
	}
}

// checkStatsJSON checks --json: one object on the last line of stderr,
// with every documented field.
func checkStatsJSON(t *testing.T, kind, stderr, prog string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("%s: --json: %v:\n%s", kind, err, stderr)
	}
	for _, k := range []string{"program", "exit_status", "fragments", "blocks", "instructions", "exits", "ibl_misses", "links",
		"polymorphic_sites", "jump_tables", "slot_branches", "flushes", "mangled_operands", "syscalls", "cache_bytes", "heap_bytes", "peak_rss_bytes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: --json lacks %q: %v", kind, k, m)
		}
	}
	if len(m) != 24 || m["program"] != prog || m["exit_status"] != 4.0 || m["fragments"].(float64) == 0 {
		t.Errorf("%s: --json %v", kind, m)
	}
}
