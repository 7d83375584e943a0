//go:build linux && amd64

package bench

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/reachvm/reachvm/jit/kernels"
)

// spawnHelper builds the spawn helper, skipping the test without gcc.
func spawnHelper(t *testing.T) string {
	t.Helper()
	p, err := kernels.Program("spawn", kernels.PIE)
	if errors.Is(err, kernels.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// spawnRun runs argv through the spawn helper and returns its report and
// how it ended.
func spawnRun(t *testing.T, spawn string, argv ...string) (string, *os.ProcessState) {
	t.Helper()
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	cmd := exec.Command(spawn, append([]string{"3"}, argv...)...)
	cmd.ExtraFiles = []*os.File{wr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	rep, _ := io.ReadAll(rd)
	cmd.Wait()
	return string(rep), cmd.ProcessState
}

// TestSpawnHelper: the helper ends as its child did (an exit status,
// death by a signal, 127 for a program it could not start) and reports
// the child's own peak RSS, which a child this Go process starts directly
// cannot: wait4 gives it at least the Go process's own peak.
func TestSpawnHelper(t *testing.T) {
	spawn := spawnHelper(t)
	rep, ps := spawnRun(t, spawn, "/bin/sh", "-c", "exit 7")
	if ps.ExitCode() != 7 {
		t.Errorf("exit 7: %v", ps)
	}
	if _, _, err := parseSpawnReport(rep); err != nil {
		t.Errorf("exit 7: %v", err)
	}
	_, ps = spawnRun(t, spawn, "/bin/sh", "-c", "kill -SEGV $$")
	if ws := ps.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGSEGV || ws.CoreDump() {
		t.Errorf("a SIGSEGV: %v (core dumped: %v)", ps, ws.CoreDump())
	}
	if _, ps = spawnRun(t, spawn, "/nonexistent/program"); ps.ExitCode() != 127 {
		t.Errorf("no program: %v, want exit 127", ps)
	}

	// 64 MiB of this process's own, touched.
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	direct := exec.Command("/bin/true")
	if err := direct.Run(); err != nil {
		t.Fatal(err)
	}
	rep, ps = spawnRun(t, spawn, "/bin/true")
	rss, _, err := parseSpawnReport(rep)
	if err != nil || !ps.Success() {
		t.Fatalf("/bin/true: %v, %v", err, ps)
	}
	if d := maxRSSKiB(direct.ProcessState); d < 64<<10 || rss <= 0 || rss > 16<<10 {
		t.Errorf("/bin/true's peak RSS: %d KiB started directly, %d KiB through spawn; want >= 64 MiB and a few MiB", d, rss)
	}
	big[len(big)-1] = 2
}

// TestRunPrograms runs a real program (cat on a generated text) natively
// and under runners that keep its output (env), change it and die of a
// signal: the first is timed, with its peak RSS; the others are recorded
// as errors and the run goes on; a program not installed is reported.
func TestRunPrograms(t *testing.T) {
	spawn := spawnHelper(t)
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	cat := ProgramWorkload{Name: "cat", Bin: "cat", Package: "coreutils", Size: 50000, FullSize: 50000, Unit: "bytes", Input: textInput()}
	none := ProgramWorkload{Name: "none", Bin: "reachvm-no-such-program", Package: "none", Optional: true, Size: 1, FullSize: 1, Unit: "bytes", Input: textInput()}
	cfg := ProgramConfig{
		Workloads: []ProgramWorkload{cat, none},
		Runners: []KernelTool{{Name: "native"}, {Name: "env", Argv: []string{env}},
			{Name: "liar", Argv: []string{"sh", "-c", "echo wrong", "sh"}},
			{Name: "killer", Argv: []string{"sh", "-c", "kill -9 $$", "sh"}}},
		StartupRuns: 3, Spawn: spawn,
	}
	res, err := RunPrograms(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Programs) != 1 || len(res.Missing) != 1 || !strings.HasPrefix(res.Missing[0], "none (reachvm-no-such-program: not installed") || !res.RSSMeasured {
		t.Fatalf("result %+v", res)
	}
	for _, row := range []ProgramRow{*res.Startup, res.Programs[0]} {
		if row.Seconds["native"] <= 0 || row.Ratio["native"] != 1 || row.Ratio["env"] <= 0 || row.MaxRSSKiB["native"] <= 0 || row.MaxRSSKiB["env"] <= 0 {
			t.Errorf("%s: %+v", row.Program, row)
		}
		if e := row.Errors["liar"]; !strings.HasPrefix(e, "standard output differs from native's") {
			t.Errorf("%s: liar's error %q", row.Program, e)
		}
		if e := row.Errors["killer"]; e != "killed by SIGKILL, native exit 0" {
			t.Errorf("%s: killer's error %q", row.Program, e)
		}
		if _, ok := row.Seconds["liar"]; ok {
			t.Errorf("%s: a time for a runner that failed: %+v", row.Program, row)
		}
	}
	if p := res.Programs[0]; p.Size != 50000 || p.Command != "cat text-50000.txt" {
		t.Errorf("cat's row: size %d, command %q", p.Size, p.Command)
	}
	if res.GeomeanOf["env"] != 1 || res.GeomeanOf["liar"] != 0 {
		t.Errorf("geomeans %v over %v", res.Geomean, res.GeomeanOf)
	}
	// A native run that fails ends the run: the input or the machine is
	// broken, and no ratio means anything.
	cfg.Workloads = []ProgramWorkload{{Name: "false", Bin: "false", Package: "coreutils", Size: 1, FullSize: 1, Unit: "runs",
		Input: func(string, int64) ([]string, string, error) { return nil, "", nil }}}
	cfg.StartupRuns = 0
	if _, err := RunPrograms(cfg); err == nil || !strings.Contains(err.Error(), "false natively: exit 1") {
		t.Errorf("a native run failing: %v", err)
	}
}
