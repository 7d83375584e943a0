package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/reachvm/reachvm/jit/kernels"
)

// The kernels benchmark: the jit's C kernels (package jit/kernels), built
// as one static executable, timed as whole processes natively and under
// each tool (reachvm run, valgrind --tool=none, qemu-x86_64) in the same
// run, each tool's time as a ratio to native's.

// KernelTool is one way of running a program: its command line goes after
// Argv. The first tool of a run is the baseline, native (no Argv).
type KernelTool struct {
	Name string
	Argv []string
	// Scratch, if set, is a directory the tool's runs write files in
	// (a DynamoRIO sample's trace): what a run leaves there is removed
	// after it, so that a benchmark's runs do not fill the disk.
	Scratch string
	// ClientPrints says the tool's client prints lines of its own into
	// the program's standard output (DynamoRIO's samples, as they are
	// built by default, do when they open a file and at exit): a run's
	// output must hold native's lines in order, with others between
	// them, instead of equalling native's. Only RunKernels, which keeps
	// the outputs, can check that; RunPrograms, which hashes them,
	// refuses such a tool.
	ClientPrints bool
}

// KernelToolNames are the tools RunKernels knows, in report order.
//
// dynamorio is not found on PATH but given by the user (WithDynamoRIO).
var KernelToolNames = []string{"native", "reachvm", "valgrind", "qemu", "dynamorio"}

// ExternalTool is a tool that is one of the system's programs: Bin (run
// with Args before the program) from the Debian package Package.
type ExternalTool struct {
	Name, Bin, Package string
	Args               []string
}

// ExternalTools are valgrind (with --tool=none: the core's translation
// alone, no instrumentation) and qemu's user-mode emulator.
var ExternalTools = []ExternalTool{
	{Name: "valgrind", Bin: "valgrind", Package: "valgrind", Args: []string{"--tool=none", "-q"}},
	{Name: "qemu", Bin: "qemu-x86_64", Package: "qemu-user"},
}

// KernelTools returns the tools named (nil: every one) in report order,
// native always first: reachvm as `reachvm run` with the reachvm binary
// at path reachvm, the external tools found on PATH. It returns the
// external tools asked for but not found apart.
func KernelTools(names []string, reachvm string) (tools []KernelTool, missing []ExternalTool) {
	want := func(n string) bool { return names == nil || contains(names, n) }
	tools = []KernelTool{{Name: "native"}}
	if want("reachvm") {
		tools = append(tools, KernelTool{Name: "reachvm", Argv: []string{reachvm, "run"}})
	}
	for _, t := range ExternalTools {
		if !want(t.Name) {
			continue
		}
		path, err := exec.LookPath(t.Bin)
		if err != nil {
			missing = append(missing, t)
			continue
		}
		tools = append(tools, KernelTool{Name: t.Name, Argv: append([]string{path}, t.Args...)})
	}
	return tools, missing
}

// ClientToolPrefix begins the name of a tool that is reachvm run with a
// sample client: "reachvm+inscount".
const ClientToolPrefix = "reachvm+"

// WithClients returns tools with, for each sample client named (as
// `reachvm run -c` takes it, or NAME:ARG with the client's argument ARG),
// the tool "reachvm+NAME" (or "reachvm+NAME:ARG"): reachvm run
// with that client, its report discarded (written to the null device:
// the tool's cost is the instrumented run's). They go after reachvm's,
// or after native's when reachvm is not among tools, so that each sits
// beside the plain translator it adds to.
//
// memtrace with no argument writes its trace to a file, as a tracer's
// user would have it, in a directory of its own under scratch (the
// tool's Scratch, emptied after every run: the disk is not filled); with
// scratch "", to the null device, and what is timed is the tracing and
// encoding without the file system.
func WithClients(tools []KernelTool, reachvm string, clients []string, scratch string) ([]KernelTool, error) {
	at := 0
	for i, t := range tools {
		if t.Name == "native" || t.Name == "reachvm" {
			at = i + 1
		}
	}
	var add []KernelTool
	for _, c := range clients {
		name, arg, hasArg := strings.Cut(c, ":")
		t := KernelTool{Name: ClientToolPrefix + c}
		argv := []string{reachvm, "run", "-c", name, "-o", os.DevNull}
		switch {
		case hasArg:
			argv = append(argv, arg)
		case name == "memtrace" && scratch == "":
			argv = append(argv, "file="+os.DevNull)
		case name == "memtrace":
			t.Scratch = filepath.Join(scratch, "reachvm-"+name)
			if err := os.MkdirAll(t.Scratch, 0o755); err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
			argv = append(argv, "file="+filepath.Join(t.Scratch, "trace.bin"))
		}
		t.Argv = append(argv, "--")
		add = append(add, t)
	}
	return slices.Concat(tools[:at:at], add, tools[at:]), nil
}

// AptGetCommands returns the command lines that install the packages of
// tools on Debian and Ubuntu: apt-get update, then apt-get install. They
// are the one place the project spells them: `reachvm bench kernels`
// prints them when a tool is missing and runs them with --install.
func AptGetCommands(tools []ExternalTool) [][]string {
	var pkgs []string
	for _, t := range tools {
		if !contains(pkgs, t.Package) {
			pkgs = append(pkgs, t.Package)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	// DPkg::Lock::Timeout waits out another apt-get holding the lock
	// instead of failing at once.
	lock := []string{"-o", "DPkg::Lock::Timeout=300"}
	return [][]string{
		append(append([]string{"apt-get"}, lock...), "update", "-q"),
		append(append(append([]string{"apt-get"}, lock...), "install", "-y", "-q", "--no-install-recommends"), pkgs...),
	}
}

// AptGetInstall runs AptGetCommands(tools), non-interactively, their
// output to w. It needs root; the caller asks the user first.
func AptGetInstall(ctx context.Context, tools []ExternalTool, w io.Writer) error {
	for _, argv := range AptGetCommands(tools) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(cmd.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("bench: %s: %w", strings.Join(argv, " "), err)
		}
	}
	return nil
}

// KernelNames returns the names of the kernels, in report order.
func KernelNames() []string {
	var names []string
	for _, k := range kernels.All {
		names = append(names, k.Name)
	}
	return names
}

// SelectKernels returns the kernels named (nil: every kernel this
// processor runs) in report order. A name that is no kernel, or a kernel
// the processor cannot run (AVX2), is an error naming it.
func SelectKernels(names []string) ([]kernels.Kernel, error) {
	var out []kernels.Kernel
	for _, n := range names {
		if !contains(KernelNames(), n) {
			return nil, fmt.Errorf("bench: unknown kernel %q (want %s)", n, strings.Join(KernelNames(), ", "))
		}
	}
	for _, k := range kernels.All {
		switch {
		case names != nil && !contains(names, k.Name):
		case k.AVX2 && !cpu.X86.HasAVX2:
			if names != nil {
				return nil, fmt.Errorf("bench: kernel %s needs AVX2, which this processor lacks", k.Name)
			}
		default:
			out = append(out, k)
		}
	}
	return out, nil
}

// KernelConfig configures RunKernels.
type KernelConfig struct {
	// Program is the kernels executable: kernels.Program("kernels", kind).
	Program string
	// Kernels are the kernels to time, from SelectKernels.
	Kernels []kernels.Kernel
	// Tools are the tools, native (the baseline) first: KernelTools.
	Tools []KernelTool
	// Runs is the number of timed runs of each kernel under each tool,
	// whose median is reported; 0 selects 3.
	Runs int
	// Seconds is the native run time each kernel's repeat count is scaled
	// to; 0 selects 0.5.
	Seconds float64
	// Timeout bounds each process; 0 selects 10 minutes.
	Timeout time.Duration
	// Log, if set, gets one line per kernel and tool as they finish.
	Log io.Writer
}

// KernelRow is one kernel's measurements.
type KernelRow struct {
	Kernel string `json:"kernel"`
	Micro  bool   `json:"micro,omitempty"`
	N      int64  `json:"n"`
	Repeat int64  `json:"repeat"`
	// Seconds maps a tool to its median wall time; Ratio to that over
	// native's.
	Seconds map[string]float64 `json:"seconds"`
	Ratio   map[string]float64 `json:"ratio"`
}

// KernelResult is a whole run: what `reachvm bench kernels --json`
// prints.
type KernelResult struct {
	Program string      `json:"program"`
	Runs    int         `json:"runs"`
	Tools   []string    `json:"tools"`
	Kernels []KernelRow `json:"kernels"`
	// Geomean and Worst summarize each tool's ratios over the kernels
	// that are not micro-benchmarks.
	Geomean map[string]float64 `json:"geomean"`
	Worst   map[string]string  `json:"worst"`
}

// RunKernels times every kernel under every tool and summarizes the
// ratios. Each kernel's repeat count is scaled until its native run takes
// about cfg.Seconds; then every tool runs it cfg.Runs times, and a run
// whose output differs from the native one is an error.
func RunKernels(cfg KernelConfig) (*KernelResult, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 3
	}
	if cfg.Seconds <= 0 {
		cfg.Seconds = 0.5
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	names, err := baselineFirst("tool", cfg.Tools)
	if err != nil {
		return nil, err
	}
	res := &KernelResult{Program: cfg.Program, Runs: cfg.Runs, Tools: names, Kernels: []KernelRow{}}
	for _, k := range cfg.Kernels {
		row, err := cfg.kernel(k)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", k.Name, err)
		}
		res.Kernels = append(res.Kernels, row)
	}
	res.summarize()
	return res, nil
}

// baselineFirst checks that tools begin with native, the baseline every
// ratio is to (as KernelTools returns them), and returns their names in
// order. what says what they are in the error: "tool" or "runner".
func baselineFirst(what string, tools []KernelTool) ([]string, error) {
	if len(tools) == 0 || tools[0].Name != "native" || len(tools[0].Argv) != 0 {
		return nil, fmt.Errorf("bench: the first %s must be native, the baseline", what)
	}
	names := make([]string, 0, len(tools))
	for _, t := range tools {
		names = append(names, t.Name)
	}
	return names, nil
}

// runOnce runs the program under t and returns its wall time and output.
func (cfg *KernelConfig) runOnce(t KernelTool, args []string) (time.Duration, []byte, error) {
	argv := append(append(append([]string{}, t.Argv...), cfg.Program), args...)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if cerr := t.cleanScratch(); err == nil && cerr != nil {
		return 0, nil, cerr
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return d, out.Bytes(), nil
}

// kernel scales a kernel's repeat count to about cfg.Seconds natively,
// then times every tool cfg.Runs times, checking each run's output against
// the native one.
func (cfg *KernelConfig) kernel(k kernels.Kernel) (KernelRow, error) {
	row := KernelRow{Kernel: k.Name, Micro: k.Micro, N: k.Bench, Seconds: map[string]float64{}, Ratio: map[string]float64{}}
	args := func(rep int64) []string {
		return []string{k.Name, strconv.FormatInt(k.Bench, 10), strconv.FormatInt(rep, 10)}
	}
	// Scale the repeat count until the native run takes about Seconds:
	// a run of one repeat can be mostly the process's start-up.
	row.Repeat = 1
	var want []byte
	for {
		d, out, err := cfg.runOnce(cfg.Tools[0], args(row.Repeat))
		if err != nil {
			return row, err
		}
		want = out
		if d.Seconds() >= cfg.Seconds/2 || row.Repeat > 1<<30 {
			break
		}
		row.Repeat *= int64(min(1000, max(2, math.Ceil(cfg.Seconds/max(d.Seconds(), 1e-6)))))
	}
	// The runs go in rounds, each tool once a round, as RunPrograms's:
	// a machine whose speed changes during a kernel (a VM's host under
	// load) slows every tool alike, not whichever ran in the slow
	// stretch.
	ds := make([][]float64, len(cfg.Tools))
	for range cfg.Runs {
		for i, t := range cfg.Tools {
			d, out, err := cfg.runOnce(t, args(row.Repeat))
			if err != nil {
				return row, err
			}
			if !t.outputMatches(out, want) {
				return row, fmt.Errorf("%s printed %q, native %q", t.Name, out, want)
			}
			ds[i] = append(ds[i], d.Seconds())
		}
	}
	for i, t := range cfg.Tools {
		sort.Float64s(ds[i])
		row.Seconds[t.Name] = ds[i][len(ds[i])/2]
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "%-12s %-8s %8.3fs\n", k.Name, t.Name, row.Seconds[t.Name])
		}
	}
	for _, t := range cfg.Tools {
		row.Ratio[t.Name] = row.Seconds[t.Name] / row.Seconds["native"]
	}
	return row, nil
}

// summarize fills Geomean and Worst from the rows that are not
// micro-benchmarks.
func (r *KernelResult) summarize() {
	r.Geomean, r.Worst = map[string]float64{}, map[string]string{}
	for _, t := range r.Tools {
		sum, n, worst := 0.0, 0, 0.0
		for _, k := range r.Kernels {
			if k.Micro {
				continue
			}
			x := k.Ratio[t]
			sum += math.Log(x)
			n++
			if x > worst {
				worst = x
				r.Worst[t] = k.Kernel
			}
		}
		if n > 0 {
			r.Geomean[t] = math.Exp(sum / float64(n))
		}
	}
}

// WriteTable prints the result: per kernel and tool the median seconds and
// the ratio to native, then each tool's geomean and worst kernel.
func (r *KernelResult) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s, median of %d runs, seconds (ratio to native)\n", r.Program, r.Runs)
	fmt.Fprintf(&b, "%-12s", "kernel")
	for _, t := range r.Tools {
		fmt.Fprintf(&b, " %18s", t)
	}
	fmt.Fprintln(&b)
	for _, k := range r.Kernels {
		name := k.Kernel
		if k.Micro {
			name += "*"
		}
		fmt.Fprintf(&b, "%-12s", name)
		for _, t := range r.Tools {
			fmt.Fprintf(&b, " %9.3f (%5.2fx)", k.Seconds[t], k.Ratio[t])
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintf(&b, "%-12s", "geomean")
	for _, t := range r.Tools {
		fmt.Fprintf(&b, " %9s  %5.2fx ", "", r.Geomean[t])
	}
	fmt.Fprintf(&b, "\n%-12s", "worst")
	for _, t := range r.Tools {
		fmt.Fprintf(&b, " %18s", r.Worst[t])
	}
	fmt.Fprintln(&b, "\n* micro-benchmark of call and return cost, outside the means")
	// The geomean row's columns end in a space: no line does.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// Plot draws the ratios as bars grouped by kernel, one bar per tool, on a
// log axis whose bars rise (slower) or fall (faster) from native's 1x.
func (r *KernelResult) Plot() *Plot {
	p := &Plot{
		Title:    "Kernels: time relative to native (log scale)",
		Subtitle: fmt.Sprintf("%s, median of %d runs; * micro-benchmark of call and return cost", r.Program, r.Runs),
		YLabel:   "time / native time",
		YLog:     true,
		YFormat:  func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) + "x" },
		Bars:     true,
		BarBase:  1,
	}
	for _, k := range r.Kernels {
		name := k.Kernel
		if k.Micro {
			name += "*"
		}
		p.Categories = append(p.Categories, name)
	}
	for _, t := range r.Tools {
		s := Series{Name: t}
		for i, k := range r.Kernels {
			s.X = append(s.X, float64(i))
			s.Y = append(s.Y, k.Ratio[t])
		}
		p.Series = append(p.Series, s)
	}
	return p
}
