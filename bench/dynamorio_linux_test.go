package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/jit/kernels"
)

// fakeDrrun is a drrun that behaves as DynamoRIO's with a sample that
// writes a file: with -c LIB it creates a log beside LIB and says so on
// standard output, runs the program, then prints its results.
const fakeDrrun = `#!/bin/sh
if [ "$1" = -c ]; then
	lib=$2; shift 2
	log=$(dirname "$lib")/memtrace.$$.log
	echo trace > "$log"
	echo "Data file $log created"
fi
shift # --
"$@" || exit
[ -n "$lib" ] && printf 'Instrumentation results:\n  saw 1 memory reference\n'
exit 0
`

// fakeDynamoRIO makes a DynamoRIO in a temporary directory, with drrun
// (fakeDrrun) and the sample libraries samples (empty files) in
// samplesDir: "api/bin" as a build directory has them, "samples/bin64"
// as a release package; it returns the directory.
func fakeDynamoRIO(t *testing.T, samplesDir string, samples ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"bin64", samplesDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin64", "drrun"), []byte(fakeDrrun), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		if err := os.WriteFile(filepath.Join(dir, samplesDir, "lib"+s+".so"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestFindDynamoRIO finds drrun and the samples of a build directory and
// of a release package, and names what is missing from anything else.
func TestFindDynamoRIO(t *testing.T) {
	build := fakeDynamoRIO(t, "api/bin")
	dr, err := FindDynamoRIO(build)
	if err != nil || dr.Drrun != filepath.Join(build, "bin64", "drrun") || dr.Samples != filepath.Join(build, "api", "bin") {
		t.Errorf("build directory: %+v, %v", dr, err)
	}
	release := fakeDynamoRIO(t, "samples/bin64")
	if dr, err = FindDynamoRIO(release); err != nil || dr.Samples != filepath.Join(release, "samples", "bin64") {
		t.Errorf("release package: %+v, %v", dr, err)
	}
	if err := os.Chmod(filepath.Join(release, "bin64", "drrun"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{release, t.TempDir()} {
		if _, err := FindDynamoRIO(dir); err == nil || !strings.Contains(err.Error(), "no executable bin64/drrun") {
			t.Errorf("FindDynamoRIO(%s) = %v, want no drrun", dir, err)
		}
	}
}

// TestWithDynamoRIO adds drrun, then drrun with the sample of each
// client that has one built, once per client; it says why each other
// client is left out.
func TestWithDynamoRIO(t *testing.T) {
	dr, err := FindDynamoRIO(fakeDynamoRIO(t, "api/bin", "inscount", "memtrace_x86_binary"))
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	native := KernelTool{Name: "native"}
	tools, skipped, err := WithDynamoRIO([]KernelTool{native}, dr, true,
		[]string{"inscount", "memtrace", "memtrace:drop", "calltrace", "bbcount"}, scratch)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	if !slices.Equal(names, []string{"native", "dynamorio", "dynamorio+inscount", "dynamorio+memtrace"}) {
		t.Fatalf("tools %v", names)
	}
	if !slices.Equal(tools[1].Argv, []string{dr.Drrun, "--"}) || tools[1].ClientPrints || tools[1].Scratch != "" {
		t.Errorf("drrun alone: %+v", tools[1])
	}
	mt := tools[3]
	lib := filepath.Join(scratch, "dynamorio-memtrace", "libmemtrace_x86_binary.so")
	if !slices.Equal(mt.Argv, []string{dr.Drrun, "-c", lib, "--"}) || !mt.ClientPrints || mt.Scratch != filepath.Dir(lib) {
		t.Errorf("memtrace: %+v", mt)
	}
	if to, err := os.Readlink(lib); err != nil || to != filepath.Join(dr.Samples, "libmemtrace_x86_binary.so") {
		t.Errorf("%s links to %q (%v), want the sample", lib, to, err)
	}
	var why []string
	for _, e := range skipped {
		why = append(why, e.Error())
	}
	if len(why) != 2 || !strings.HasPrefix(why[0], "calltrace: DynamoRIO has no sample") || !strings.Contains(why[1], "bbcount: DynamoRIO's sample bbcount is not in") {
		t.Errorf("skipped %q", why)
	}
}

// TestOutputMatches: a tool whose client prints into the output matches
// when native's lines are all there in order; any other tool only when
// the output is the same.
func TestOutputMatches(t *testing.T) {
	native := "k_fib 832072\nsecond\n"
	for _, tc := range []struct {
		got          string
		clientPrints bool
		want         bool
	}{
		{native, false, true},
		{native, true, true},
		{"Data file x created\n" + native + "Instrumentation results:\n  saw 3\n", true, true},
		{"Data file x created\nk_fib 832072\nresults\nsecond\n", true, true},
		{"Data file x created\n" + native, false, false},
		{"second\nk_fib 832072\n", true, false},
		{"k_fib 832072\n", true, false},
		{"k_fib 832072\nsecond", true, false},
		{"k_fib 8320721\nsecond\n", true, false},
		{"", true, false},
	} {
		tool := KernelTool{Name: "t", ClientPrints: tc.clientPrints}
		if got := tool.outputMatches([]byte(tc.got), []byte(native)); got != tc.want {
			t.Errorf("ClientPrints %v, output %q: matches %v, want %v", tc.clientPrints, tc.got, got, tc.want)
		}
	}
}

// TestRunKernelsDynamoRIOSample runs a kernel under a drrun with a sample
// that prints around the program's output and writes a file beside its
// library: the run is accepted and leaves nothing in the scratch
// directory but the library's link; bench programs refuses such a tool.
func TestRunKernelsDynamoRIOSample(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the kernels are linux/amd64 programs")
	}
	prog, err := kernels.Program("kernels", kernels.Exec)
	if err != nil {
		t.Skip(err) // no gcc
	}
	dr, err := FindDynamoRIO(fakeDynamoRIO(t, "api/bin", "memtrace_x86_binary"))
	if err != nil {
		t.Fatal(err)
	}
	tools, _, err := WithDynamoRIO([]KernelTool{{Name: "native"}}, dr, false, []string{"memtrace"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := SelectKernels([]string{"k_fib"})
	res, err := RunKernels(KernelConfig{Program: prog, Kernels: ks, Runs: 2, Seconds: 0.01, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Kernels[0].Seconds["dynamorio+memtrace"]; s <= 0 {
		t.Errorf("dynamorio+memtrace took %v s", s)
	}
	ents, err := os.ReadDir(tools[1].Scratch)
	if err != nil || len(ents) != 1 || ents[0].Name() != "libmemtrace_x86_binary.so" {
		t.Errorf("the scratch directory holds %v (%v), want the library's link alone", ents, err)
	}
	// The same drrun printing the wrong thing is caught.
	tools[1].Argv = []string{"sh", "-c", "echo Data file created; echo wrong", "--"}
	if _, err := RunKernels(KernelConfig{Program: prog, Kernels: ks, Runs: 1, Seconds: 0.01, Tools: tools}); err == nil || !strings.Contains(err.Error(), "dynamorio+memtrace printed") {
		t.Errorf("a sample run printing something else: %v", err)
	}
	if _, err := RunPrograms(ProgramConfig{Runners: tools}); err == nil || !strings.Contains(err.Error(), "runner dynamorio+memtrace: its client prints into the output") {
		t.Errorf("RunPrograms with a sample that prints: %v", err)
	}
}

// TestWithClientsScratch: with a scratch directory, memtrace writes its
// trace into a directory of its own there, the tool's Scratch, which a
// run leaves empty.
func TestWithClientsScratch(t *testing.T) {
	scratch := t.TempDir()
	got, err := WithClients([]KernelTool{{Name: "native"}}, "/rv", []string{"memtrace", "memtrace:drop"}, scratch)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(scratch, "reachvm-memtrace")
	want := []string{"/rv", "run", "-c", "memtrace", "-o", os.DevNull, "file=" + filepath.Join(dir, "trace.bin"), "--"}
	if len(got) != 3 || !slices.Equal(got[1].Argv, want) || got[1].Scratch != dir || got[2].Scratch != "" {
		t.Fatalf("WithClients = %+v, want memtrace %q writing in %s, memtrace:drop with no scratch", got, want, dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "trace.bin"), []byte("trace"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := got[1].cleanScratch(); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("after cleanScratch %s holds %v (%v), want nothing", dir, ents, err)
	}
}
