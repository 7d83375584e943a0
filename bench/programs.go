package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The programs benchmark: real programs of the distribution (xz, sha256sum,
// sqlite3, python3, and gzip, bzip2, perl and jq where installed) on
// generated inputs, timed as whole processes natively and under each
// runner (reachvm run, valgrind --tool=none, qemu-x86_64) in the same run,
// with each run's peak resident set size, and /bin/true's start-up time.
// Where the kernels benchmark measures the translator on code written for
// it, this one measures it on what people run, libc and all.

// ProgramWorkload is one program of the benchmark: Bin run with Args on an
// input of Size units (scaled by ProgramConfig.Scale).
type ProgramWorkload struct {
	// Name names the row: the program and what it does ("xz-9").
	Name string
	// Bin is the program's name, looked up on PATH (and in /usr/bin
	// when PATH's is not an ELF executable: a wrapper script), Package
	// the Debian package that installs it.
	Bin, Package string
	// Optional marks a program that is benchmarked only where it is
	// installed; the others are missing, and reported as such, where
	// they are not.
	Optional bool
	// Size and FullSize are the input's size in Unit: the default (a
	// run of about a second natively) and the full one (--full).
	Size, FullSize int64
	// Unit says what Size counts, for the report: "bytes", "rows".
	Unit string
	// Input writes the input of size n into dir and returns the
	// program's arguments and the file its standard input reads ("":
	// /dev/null). It is called once per run of the benchmark.
	Input func(dir string, n int64) (args []string, stdin string, err error)
}

// ProgramWorkloads are the programs, in report order.
var ProgramWorkloads = []ProgramWorkload{
	{Name: "xz-9", Bin: "xz", Package: "xz-utils", Size: 2 << 20, FullSize: 64 << 20, Unit: "bytes",
		Input: textInput("-9", "-c", "-T1")},
	{Name: "sha256sum", Bin: "sha256sum", Package: "coreutils", Size: 16 << 20, FullSize: 64 << 20, Unit: "bytes",
		Input: textInput()},
	{Name: "sqlite3", Bin: "sqlite3", Package: "sqlite3", Size: 20000, FullSize: 100000, Unit: "rows",
		Input: sqlInput},
	{Name: "python3", Bin: "python3", Package: "python3", Size: 150000, FullSize: 1500000, Unit: "iterations",
		Input: scriptInput("bench.py", pythonBench)},
	{Name: "gzip-6", Bin: "gzip", Package: "gzip", Optional: true, Size: 16 << 20, FullSize: 64 << 20, Unit: "bytes",
		Input: textInput("-6", "-c")},
	{Name: "bzip2-9", Bin: "bzip2", Package: "bzip2", Optional: true, Size: 4 << 20, FullSize: 64 << 20, Unit: "bytes",
		Input: textInput("-9", "-c")},
	{Name: "perl", Bin: "perl", Package: "perl", Optional: true, Size: 100000, FullSize: 1000000, Unit: "iterations",
		Input: scriptInput("bench.pl", perlBench)},
	{Name: "jq", Bin: "jq", Package: "jq", Optional: true, Size: 50000, FullSize: 500000, Unit: "objects",
		Input: jsonInput},
}

// ProgramNames returns the names of the workloads, in report order.
func ProgramNames() []string {
	var names []string
	for _, w := range ProgramWorkloads {
		names = append(names, w.Name)
	}
	return names
}

// SelectPrograms returns the workloads named (nil: every one) in report
// order; a name that is no workload is an error naming it.
func SelectPrograms(names []string) ([]ProgramWorkload, error) {
	for _, n := range names {
		if !contains(ProgramNames(), n) {
			return nil, fmt.Errorf("bench: unknown program %q (want %s)", n, strings.Join(ProgramNames(), ", "))
		}
	}
	var out []ProgramWorkload
	for _, w := range ProgramWorkloads {
		if names == nil || contains(names, w.Name) {
			out = append(out, w)
		}
	}
	return out, nil
}

// FindELF returns the absolute path of the ELF executable name runs:
// PATH's, or /usr/bin's when PATH's is a script (a version manager's
// shim), which a binary translator cannot load.
func FindELF(name string) (string, error) {
	var tried []string
	for _, cand := range []string{name, filepath.Join("/usr/bin", filepath.Base(name))} {
		p, err := exec.LookPath(cand)
		if err != nil {
			continue
		}
		if p, err = filepath.Abs(p); err != nil {
			continue
		}
		if isELF(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if len(tried) > 0 {
		return "", fmt.Errorf("bench: %s: %s is not an ELF executable", name, strings.Join(tried, " nor "))
	}
	return "", fmt.Errorf("bench: %s: not installed", name)
}

// isELF reports whether the file at path is an ELF file.
func isELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// MissingPrograms returns the workloads, optional ones aside, whose
// program is not installed, as ExternalTools (for AptGetCommands).
func MissingPrograms(ws []ProgramWorkload) []ExternalTool {
	var missing []ExternalTool
	for _, w := range ws {
		if _, err := FindELF(w.Bin); err != nil && !w.Optional {
			missing = append(missing, ExternalTool{Name: w.Name, Bin: w.Bin, Package: w.Package})
		}
	}
	return missing
}

// ProgramConfig configures RunPrograms.
type ProgramConfig struct {
	// Workloads are the programs to time (SelectPrograms); one whose
	// program is not installed is reported in ProgramResult.Missing.
	Workloads []ProgramWorkload
	// Runners are the ways of running them, native (the baseline)
	// first: KernelTools.
	Runners []KernelTool
	// Runs is the number of timed runs of each program under each
	// runner, whose median is reported; 0 selects 1.
	Runs int
	// Full selects the workloads' FullSize instead of Size.
	Full bool
	// Scale multiplies the sizes; 0 selects 1.
	Scale float64
	// StartupRuns is the number of runs of /bin/true under each runner
	// whose median is the start-up time; 0 leaves the start-up out.
	StartupRuns int
	// Spawn is the spawn helper (kernels.Program("spawn", ...)) every
	// run starts through, so that its peak RSS is its own; "" runs the
	// programs directly and leaves the peak RSS out (a child Go starts
	// directly reports at least Go's own peak).
	Spawn string
	// Timeout bounds each process; 0 selects 10 minutes.
	Timeout time.Duration
	// Dir is where the inputs are written ("": a temporary directory,
	// removed after the run).
	Dir string
	// Log, if set, gets one line per program and runner as they finish.
	Log io.Writer
}

// ProgramRow is one program's measurements. A runner that failed (it
// could not run the program, or its output or status differs from
// native's) has an entry in Errors and none in Seconds, Ratio and RSS.
type ProgramRow struct {
	Program string `json:"program"`
	// Command is what ran, with the input's size: "xz -9 -c -T1
	// text(3 MiB)".
	Command string `json:"command"`
	Size    int64  `json:"size"`
	Unit    string `json:"unit"`
	// Seconds maps a runner to its median wall time, CPUSeconds to its
	// median user plus system time, Ratio to Seconds over native's.
	Seconds    map[string]float64 `json:"seconds"`
	CPUSeconds map[string]float64 `json:"cpu_seconds"`
	Ratio      map[string]float64 `json:"ratio"`
	// MaxRSSKiB maps a runner to the largest peak resident set size of
	// its runs (wait4's ru_maxrss: the runner and program together, as
	// they are one process).
	MaxRSSKiB map[string]int64 `json:"max_rss_kib"`
	// Errors maps a runner that failed to how: its exit status and the
	// first line of its standard error, or how its output differed.
	Errors map[string]string `json:"errors"`
}

// ProgramResult is a whole run: what `reachvm bench programs --json`
// prints.
type ProgramResult struct {
	Runs    int      `json:"runs"`
	Full    bool     `json:"full"`
	Scale   float64  `json:"scale"`
	Runners []string `json:"runners"`
	// Startup is /bin/true's row (Size is StartupRuns, in "runs"; the
	// times are their medians), absent when left out.
	Startup  *ProgramRow  `json:"startup,omitempty"`
	Programs []ProgramRow `json:"programs"`
	// Missing are the programs not installed: "jq (Debian package jq)".
	Missing []string `json:"missing"`
	// RSSMeasured says whether the runs went through the spawn helper,
	// which measures their peak RSS (MaxRSSKiB is empty otherwise).
	RSSMeasured bool `json:"rss_measured"`
	// Geomean is each runner's geometric mean ratio over the programs
	// it ran; GeomeanOf how many those were.
	Geomean   map[string]float64 `json:"geomean"`
	GeomeanOf map[string]int     `json:"geomean_of"`
}

// RunPrograms generates the inputs, times every installed program under
// every runner and summarizes the ratios. A runner that fails on a program
// is recorded in the row's Errors and the run goes on; only a native run
// that fails (the input, the program or the machine is broken) ends it
// with an error.
func RunPrograms(cfg ProgramConfig) (*ProgramResult, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 1
	}
	if cfg.Scale <= 0 {
		cfg.Scale = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	names, err := baselineFirst("runner", cfg.Runners)
	if err != nil {
		return nil, err
	}
	for _, r := range cfg.Runners {
		if r.ClientPrints || r.Scratch != "" {
			return nil, fmt.Errorf("bench: runner %s: its client prints into the output or writes files, which only RunKernels deals with", r.Name)
		}
	}
	res := &ProgramResult{Runs: cfg.Runs, Full: cfg.Full, Scale: cfg.Scale, Runners: names, Programs: []ProgramRow{}, Missing: []string{},
		RSSMeasured: cfg.Spawn != ""}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "reachvm-bench-programs-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	if cfg.StartupRuns > 0 {
		bin, err := FindELF("/bin/true")
		if err != nil {
			return nil, err
		}
		row, err := cfg.measure("/bin/true", bin, bin, nil, "", cfg.StartupRuns)
		if err != nil {
			return nil, err
		}
		row.Size, row.Unit = int64(cfg.StartupRuns), "runs"
		res.Startup = &row
	}
	for _, w := range cfg.Workloads {
		bin, err := FindELF(w.Bin)
		if err != nil {
			res.Missing = append(res.Missing, fmt.Sprintf("%s (%s: Debian package %s)", w.Name, strings.TrimPrefix(err.Error(), "bench: "), w.Package))
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "%-12s missing: %v\n", w.Name, strings.TrimPrefix(err.Error(), "bench: "))
			}
			continue
		}
		n := w.FullSize
		if !cfg.Full {
			n = w.Size
		}
		n = max(1, int64(math.Round(float64(n)*cfg.Scale)))
		args, stdin, err := w.Input(cfg.Dir, n)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: writing its input: %w", w.Name, err)
		}
		row, err := cfg.measure(w.Name, w.Bin, bin, args, stdin, cfg.Runs)
		if err != nil {
			return nil, err
		}
		row.Size, row.Unit = n, w.Unit
		row.Command = commandText(w.Bin, args, stdin, cfg.Dir)
		res.Programs = append(res.Programs, row)
	}
	res.summarize()
	return res, nil
}

// commandText is a row's command as the report shows it: the program's
// name and arguments, the inputs in dir by their base names, and the file
// standard input reads.
func commandText(bin string, args []string, stdin, dir string) string {
	parts := []string{bin}
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, dir+string(filepath.Separator)):
			a = filepath.Base(a)
		case len(a) > 32:
			// A program on the command line (jq's filter).
			a = "'" + a[:24] + "...'"
		}
		parts = append(parts, a)
	}
	if stdin != "" {
		parts = append(parts, "<", filepath.Base(stdin))
	}
	return strings.Join(parts, " ")
}

// programRun is how one run of a program ended.
type programRun struct {
	wall, cpu time.Duration
	maxRSSKiB int64
	// out is the SHA-256 of the standard output, status how the run
	// ended ("exit 0", "killed by signal 9"), stderr the first line of
	// its standard error.
	out            [32]byte
	status, stderr string
}

// runOnce runs the program bin with args under runner r, its standard
// input from stdin (or /dev/null), in cfg.Dir: through cfg.Spawn, which
// reports the peak RSS and CPU time, when it is set.
func (cfg *ProgramConfig) runOnce(r KernelTool, bin string, args []string, stdin string) (programRun, error) {
	argv := append(append(append([]string{}, r.Argv...), bin), args...)
	// The spawn helper's execve searches no PATH, and the runs change
	// directory.
	p, err := exec.LookPath(argv[0])
	if err == nil {
		p, err = filepath.Abs(p)
	}
	if err != nil {
		return programRun{}, err
	}
	argv[0] = p
	if cfg.Spawn == "" {
		return cfg.start(argv, stdin, nil, nil)
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return programRun{}, err
	}
	defer rd.Close()
	defer wr.Close()
	return cfg.start(append([]string{cfg.Spawn, "3"}, argv...), stdin, wr, rd)
}

// start runs argv in cfg.Dir, its standard input from stdin (or
// /dev/null), its output hashed. With report set (the spawn helper's pipe:
// wr its write end, passed as descriptor 3; rd its read end), the peak RSS
// and CPU time are the helper's report; otherwise the CPU time is wait4's
// and the peak RSS is left at 0.
func (cfg *ProgramConfig) start(argv []string, stdin string, wr, rd *os.File) (programRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = cfg.Dir
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			return programRun{}, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	if wr != nil {
		cmd.ExtraFiles = []*os.File{wr}
	}
	h := sha256.New()
	var errb limitedBuffer
	cmd.Stdout, cmd.Stderr = h, &errb
	start := time.Now()
	err := cmd.Start()
	if wr != nil {
		// Only the helper holds the write end now: its exit ends
		// the report.
		wr.Close()
	}
	if err != nil {
		return programRun{}, err
	}
	var rep []byte
	if rd != nil {
		rep, _ = io.ReadAll(io.LimitReader(rd, 256))
	}
	err = cmd.Wait()
	run := programRun{wall: time.Since(start), stderr: firstLine(errb.String())}
	h.Sum(run.out[:0])
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return run, fmt.Errorf("timed out after %v", cfg.Timeout)
	case err != nil && !errors.As(err, &ee):
		return run, err
	}
	run.status = exitText(cmd.ProcessState)
	if rd == nil {
		run.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return run, nil
	}
	rss, cpu, err := parseSpawnReport(string(rep))
	if err != nil {
		return run, fmt.Errorf("the spawn helper: %v (%s)", err, run.status)
	}
	run.maxRSSKiB, run.cpu = rss, cpu
	return run, nil
}

// parseSpawnReport reads the spawn helper's report: "MAXRSS_KIB UTIME_US
// STIME_US\n".
func parseSpawnReport(s string) (maxRSSKiB int64, cpu time.Duration, err error) {
	f := strings.Fields(s)
	if len(f) != 3 || !strings.HasSuffix(s, "\n") {
		return 0, 0, fmt.Errorf("report %q: want three numbers and a newline", s)
	}
	var v [3]int64
	for i := range f {
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil || v[i] < 0 {
			return 0, 0, fmt.Errorf("report %q: %q is not a count", s, f[i])
		}
	}
	return v[0], time.Duration(v[1]+v[2]) * time.Microsecond, nil
}

// measure runs a program under every runner runs times and returns its
// row: the median times, the largest peak RSS, and the runners that
// failed with how. A native run that fails is an error.
func (cfg *ProgramConfig) measure(name, bin, path string, args []string, stdin string, runs int) (ProgramRow, error) {
	row := ProgramRow{Program: name, Command: commandText(bin, args, stdin, cfg.Dir),
		Seconds: map[string]float64{}, CPUSeconds: map[string]float64{}, Ratio: map[string]float64{},
		MaxRSSKiB: map[string]int64{}, Errors: map[string]string{}}
	// The runs go in rounds, each runner once a round, native first: a
	// machine whose speed changes during the benchmark (a VM's host
	// under load) then slows every runner alike, not whichever ran in
	// the slow stretch.
	type sample struct {
		walls, cpus []float64
		rss         int64
	}
	samples := make([]sample, len(cfg.Runners))
	var want programRun
	for range runs {
		for i, r := range cfg.Runners {
			if _, failed := row.Errors[r.Name]; failed {
				continue
			}
			run, err := cfg.runOnce(r, path, args, stdin)
			if err == nil && i == 0 && run.status != "exit 0" {
				err = fmt.Errorf("%s: %s", run.status, run.stderr)
			}
			if err == nil && i == 0 {
				want = run
			}
			if err == nil && i > 0 {
				err = differsFrom(&want, &run)
			}
			if err != nil {
				if i == 0 {
					return row, fmt.Errorf("bench: %s natively: %v", name, err)
				}
				row.Errors[r.Name] = err.Error()
				if cfg.Log != nil {
					fmt.Fprintf(cfg.Log, "%-12s %-8s failed: %s\n", name, r.Name, err)
				}
				continue
			}
			sm := &samples[i]
			sm.walls = append(sm.walls, run.wall.Seconds())
			sm.cpus = append(sm.cpus, run.cpu.Seconds())
			sm.rss = max(sm.rss, run.maxRSSKiB)
		}
	}
	for i, r := range cfg.Runners {
		if _, failed := row.Errors[r.Name]; failed {
			continue
		}
		sm := &samples[i]
		row.Seconds[r.Name], row.CPUSeconds[r.Name] = median(sm.walls), median(sm.cpus)
		if cfg.Spawn != "" {
			row.MaxRSSKiB[r.Name] = sm.rss
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "%-12s %-8s %8.3fs %8.1f MiB\n", name, r.Name, row.Seconds[r.Name], float64(row.MaxRSSKiB[r.Name])/1024)
		}
	}
	for r, s := range row.Seconds {
		row.Ratio[r] = s / row.Seconds["native"]
	}
	return row, nil
}

// differsFrom says how a runner's run differs from the native one, or
// returns nil: the exit status, then the output.
func differsFrom(native, got *programRun) error {
	switch {
	case got.status != native.status && got.stderr != "":
		return fmt.Errorf("%s: %s", got.status, got.stderr)
	case got.status != native.status:
		return fmt.Errorf("%s, native %s", got.status, native.status)
	case got.out != native.out:
		return fmt.Errorf("standard output differs from native's (sha256 %x..., native %x...)", got.out[:6], native.out[:6])
	}
	return nil
}

// median returns the median of xs (the lower middle of an even count).
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[(len(s)-1)/2]
}

// firstLine returns the first non-empty line of s, at most 200 bytes.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 200 {
				l = l[:200] + "..."
			}
			return l
		}
	}
	return ""
}

// limitedBuffer keeps the first 64 KiB written to it (a runner's standard
// error: its first line is what a report needs) and discards the rest.
type limitedBuffer struct {
	b bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }

// summarize fills Geomean and GeomeanOf from the programs' ratios.
func (r *ProgramResult) summarize() {
	r.Geomean, r.GeomeanOf = map[string]float64{}, map[string]int{}
	for _, t := range r.Runners {
		sum, n := 0.0, 0
		for _, p := range r.Programs {
			if x, ok := p.Ratio[t]; ok {
				sum += math.Log(x)
				n++
			}
		}
		if n > 0 {
			r.Geomean[t], r.GeomeanOf[t] = math.Exp(sum/float64(n)), n
		}
	}
}
