//go:build linux && amd64

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/reachvm/reachvm/jit/kernels"
)

// cmdBench is `reachvm bench kernels [flags]`: it builds the jit's C
// kernels as a static executable and times each kernel natively, under
// `reachvm run`, under `valgrind --tool=none` and under `qemu-x86_64`, all
// as whole processes in the same run, and prints the times and the ratios
// to native, as a table, JSON, and (with --plot) an SVG bar chart.
func cmdBench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "kernels" {
		fmt.Fprintln(stderr, "usage: reachvm bench kernels [--json] [--runs N] [--seconds S] [--plot FILE] [--install] [--only K1,K2] [--tools T1,T2] [--reachvm PATH] [--pie]")
		return 2
	}
	fs := flag.NewFlagSet("bench kernels", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	runs := fs.Int("runs", 3, "runs per kernel and tool; the median is reported")
	seconds := fs.Float64("seconds", 0.5, "native run time each kernel is scaled to (its repeat count)")
	plot := fs.String("plot", "", "write an SVG chart of the ratios to this file")
	install := fs.Bool("install", false, "apt-get install valgrind and qemu-user when missing (needs root)")
	onlyK := fs.String("only", "", "comma-separated kernels to run (default all)")
	pie := fs.Bool("pie", false, "build the kernels as a static PIE instead of ET_EXEC")
	self := fs.String("reachvm", "", "the reachvm binary to time (default: this one)")
	only := fs.String("tools", "", "comma-separated tools among native, reachvm, valgrind, qemu (default all found)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	kind := kernels.Exec
	if *pie {
		kind = kernels.PIE
	}
	prog, err := kernels.Program("kernels", kind)
	if err != nil {
		fmt.Fprintf(stderr, "reachvm bench kernels: building the kernels: %v\n", err)
		return 1
	}
	if *self == "" {
		if *self, err = os.Executable(); err != nil {
			fmt.Fprintf(stderr, "reachvm bench kernels: %v\n", err)
			return 1
		}
	}
	want := func(name string) bool { return *only == "" || strings.Contains(","+*only+",", ","+name+",") }
	tools := []tool{{Name: "native", argv: nil}}
	if want("reachvm") {
		tools = append(tools, tool{Name: "reachvm", argv: []string{*self, "run"}})
	}
	for _, t := range []struct{ name, bin, pkg string }{{"valgrind", "valgrind", "valgrind"}, {"qemu", "qemu-x86_64", "qemu-user"}} {
		if !want(t.name) {
			continue
		}
		path, err := exec.LookPath(t.bin)
		if err != nil && *install {
			path, err = aptInstall(t.bin, t.pkg, stderr)
		}
		if err != nil {
			fmt.Fprintf(stderr, "reachvm bench kernels: %s not found, skipped (--install tries apt-get)\n", t.bin)
			continue
		}
		argv := []string{path}
		if t.name == "valgrind" {
			argv = append(argv, "--tool=none", "-q")
		}
		tools = append(tools, tool{Name: t.name, argv: argv})
	}
	var res benchResult
	res.Program, res.Runs = prog, *runs
	for _, t := range tools {
		res.Tools = append(res.Tools, t.Name)
	}
	for _, k := range kernels.All {
		if k.AVX2 && !cpu.X86.HasAVX2 || *onlyK != "" && !strings.Contains(","+*onlyK+",", ","+k.Name+",") {
			continue
		}
		row, err := benchKernel(k, prog, tools, *runs, *seconds, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "reachvm bench kernels: %s: %v\n", k.Name, err)
			return 1
		}
		res.Kernels = append(res.Kernels, row)
	}
	res.summarize()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return 1
		}
	} else {
		res.table(stdout)
	}
	if *plot != "" {
		if err := os.WriteFile(*plot, res.svg(), 0o644); err != nil {
			fmt.Fprintf(stderr, "reachvm bench kernels: %v\n", err)
			return 1
		}
	}
	return 0
}

// tool runs a program: argv prefixes the program's own command line.
type tool struct {
	Name string
	argv []string
}

// kernelRow is one kernel's measurements.
type kernelRow struct {
	Kernel string `json:"kernel"`
	Micro  bool   `json:"micro,omitempty"`
	N      int64  `json:"n"`
	Repeat int64  `json:"repeat"`
	// Seconds maps a tool to its median wall time; Ratio to that over
	// native's.
	Seconds map[string]float64 `json:"seconds"`
	Ratio   map[string]float64 `json:"ratio"`
}

// benchResult is the whole report.
type benchResult struct {
	Program string      `json:"program"`
	Runs    int         `json:"runs"`
	Tools   []string    `json:"tools"`
	Kernels []kernelRow `json:"kernels"`
	// Geomean and Worst summarize each tool's ratios over the kernels
	// that are not micro-benchmarks.
	Geomean map[string]float64 `json:"geomean"`
	Worst   map[string]string  `json:"worst"`
}

// runOnce runs the program under t and returns its wall time and output.
func runOnce(t tool, prog string, args []string) (time.Duration, []byte, error) {
	argv := append(append(append([]string{}, t.argv...), prog), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return d, out.Bytes(), nil
}

// benchKernel scales a kernel's repeat count to about seconds natively,
// then times every tool runs times, checking each run's output against
// the native one.
func benchKernel(k kernels.Kernel, prog string, tools []tool, runs int, seconds float64, stderr io.Writer) (kernelRow, error) {
	row := kernelRow{Kernel: k.Name, Micro: k.Micro, N: k.Bench, Seconds: map[string]float64{}, Ratio: map[string]float64{}}
	args := func(rep int64) []string {
		return []string{k.Name, strconv.FormatInt(k.Bench, 10), strconv.FormatInt(rep, 10)}
	}
	// Scale the repeat count until the native run takes about seconds:
	// a run of one repeat can be mostly the process's start-up.
	row.Repeat = 1
	var want []byte
	for {
		d, out, err := runOnce(tools[0], prog, args(row.Repeat))
		if err != nil {
			return row, err
		}
		want = out
		if d.Seconds() >= seconds/2 || row.Repeat > 1<<30 {
			break
		}
		row.Repeat *= int64(min(1000, max(2, math.Ceil(seconds/max(d.Seconds(), 1e-6)))))
	}
	for _, t := range tools {
		var ds []float64
		for range runs {
			d, out, err := runOnce(t, prog, args(row.Repeat))
			if err != nil {
				return row, err
			}
			if !bytes.Equal(out, want) {
				return row, fmt.Errorf("%s printed %q, native %q", t.Name, out, want)
			}
			ds = append(ds, d.Seconds())
		}
		sort.Float64s(ds)
		row.Seconds[t.Name] = ds[len(ds)/2]
		fmt.Fprintf(stderr, "%-12s %-8s %8.3fs\n", k.Name, t.Name, row.Seconds[t.Name])
	}
	for _, t := range tools {
		row.Ratio[t.Name] = row.Seconds[t.Name] / row.Seconds["native"]
	}
	return row, nil
}

func (r *benchResult) summarize() {
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

func (r *benchResult) table(w io.Writer) {
	fmt.Fprintf(w, "%s, median of %d runs, seconds (ratio to native)\n", r.Program, r.Runs)
	fmt.Fprintf(w, "%-12s", "kernel")
	for _, t := range r.Tools {
		fmt.Fprintf(w, " %18s", t)
	}
	fmt.Fprintln(w)
	for _, k := range r.Kernels {
		name := k.Kernel
		if k.Micro {
			name += "*"
		}
		fmt.Fprintf(w, "%-12s", name)
		for _, t := range r.Tools {
			fmt.Fprintf(w, " %9.3f (%5.2fx)", k.Seconds[t], k.Ratio[t])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-12s", "geomean")
	for _, t := range r.Tools {
		fmt.Fprintf(w, " %9s  %5.2fx ", "", r.Geomean[t])
	}
	fmt.Fprintf(w, "\n%-12s", "worst")
	for _, t := range r.Tools {
		fmt.Fprintf(w, " %18s", r.Worst[t])
	}
	fmt.Fprintln(w, "\n* micro-benchmark of call and return cost, outside the means")
}

// svg draws the ratios as grouped bars, one group per kernel.
func (r *benchResult) svg() []byte {
	var b bytes.Buffer
	colors := []string{"#999999", "#1f77b4", "#ff7f0e", "#2ca02c"}
	tools := r.Tools
	maxR := 1.0
	for _, k := range r.Kernels {
		for _, t := range tools {
			maxR = max(maxR, k.Ratio[t])
		}
	}
	const h, top, left, bw = 300.0, 30.0, 50.0, 12.0
	gw := bw*float64(len(tools)) + 14
	w := left + gw*float64(len(r.Kernels)) + 20
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="10">`+"\n", w, h+top+60)
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="13">Kernels: time relative to native (log scale)</text>`+"\n", left)
	y := func(x float64) float64 { return top + h - h*math.Log(x)/math.Log(maxR*1.1) }
	for _, g := range []float64{1, 2, 4, 8, 16, 32} {
		if g > maxR*1.1 {
			break
		}
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="5" y="%.1f">%gx</text>`+"\n", left, w-10, y(g), y(g), y(g)+3, g)
	}
	for i, k := range r.Kernels {
		x0 := left + gw*float64(i)
		for j, t := range tools {
			v := k.Ratio[t]
			yy := y(max(v, 1))
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"><title>%s %s %.2fx</title></rect>`+"\n", x0+bw*float64(j), yy, bw-1, top+h-yy+1, colors[j%len(colors)], k.Kernel, t, v)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" transform="rotate(40 %.1f %.0f)">%s</text>`+"\n", x0, top+h+14, x0, top+h+14, k.Kernel)
	}
	for j, t := range tools {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", left+90*float64(j), h+top+45, colors[j%len(colors)], left+90*float64(j)+14, h+top+54, t)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// aptInstall installs pkg with apt-get, as root only, and returns bin's
// path.
func aptInstall(bin, pkg string, stderr io.Writer) (string, error) {
	if u, err := user.Current(); err != nil || u.Uid != "0" {
		return "", fmt.Errorf("not root")
	}
	fmt.Fprintf(stderr, "reachvm bench kernels: apt-get install %s\n", pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-q", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", err
	}
	return exec.LookPath(bin)
}
