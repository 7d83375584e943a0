//go:build linux && amd64

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/kernels"
)

// A transparency case: a freestanding program (jit/kernels/c/programs)
// that faults, takes signals or rewrites its code, and prints what it
// observes, deterministically. Under reachvm it must behave as natively:
// the same standard output, the same exit status, or death by the same
// signal.
type transCase struct {
	// prog is the program, args its arguments.
	prog string
	args []string
	// flags are reachvm run's flags before PROG.
	flags []string
	// pending, when set, says what the case waits for: it does not pass
	// under reachvm yet, and the test requires that it still differs
	// from native (logging how), so that the mark goes as soon as it
	// passes.
	pending string
	// valgrind, when set, says how valgrind itself differs from native
	// on this case (valgrind's limits, not the program's): its run is
	// logged, not compared. Likewise qemu.
	valgrind, qemu string
}

// name is the case as a command line: the program, its arguments and
// reachvm's flags.
func (c *transCase) name() string {
	return strings.Join(append(append([]string{c.prog}, c.args...), c.flags...), " ")
}

// Why cases are pending.
const (
	// Without --strict-flags the translator takes the psABI at its
	// word: the flags have no role across a call, so an indirect call's
	// site compares its target with cmp and the flags a fault in the
	// callee's first instruction reports are the site's. With
	// --strict-flags (the case below) they are the application's.
	needCallFlags = "the flags at an indirect call, which the call site's compare changes unless --strict-flags"
)

// Why valgrind differs.
const (
	vgFaultState = "valgrind's fault context: no IF flag, cs 0, trapno 0, its own si_code for SIGILL and SIGTRAP, int $3 and int1 as SIGILL; and it dies of a push to an unmapped page instead of delivering the fault"
	vgHlt        = "valgrind raises SIGILL for hlt, the kernel SIGSEGV"
	vgOrder      = "valgrind delivers pending signals lowest first, the kernel highest first (each delivery nests the next)"
)

// Why qemu differs.
const (
	qemuFaultState = "qemu's fault context: trapno -1, page-fault error codes of its own"
	qemuAlign      = "qemu enters a handler with its stack misaligned: the handler's movaps faults"
)

var transCases = []transCase{
	// Blocks that start with a system call or a trap (these looped
	// forever once).
	{prog: "blockstart", args: []string{"twice"}},
	{prog: "blockstart", args: []string{"branch"}},
	{prog: "blockstart", args: []string{"branch"}, flags: []string{"--max-blocks", "1"}},
	{prog: "blockstart", args: []string{"int3"}},
	{prog: "die", args: []string{"null"}},
	{prog: "die", args: []string{"div0"}},
	{prog: "die", args: []string{"ud2"}},
	{prog: "die", args: []string{"int3"}},
	{prog: "die", args: []string{"badop"}},
	{prog: "die", args: []string{"hlt"}, valgrind: vgHlt},
	{prog: "die", args: []string{"stack"}},
	{prog: "die", args: []string{"usr1"}},
	{prog: "die", args: []string{"alrm"}},
	{prog: "sigrepair", args: []string{"map"}},
	{prog: "sigrepair", args: []string{"reg"}},
	{prog: "sigjump"},
	{prog: "skiprip"},
	{prog: "skiprip", flags: []string{"--max-blocks", "1"}},
	{prog: "stackovf"},
	{prog: "alarm", args: []string{"itimer"}},
	{prog: "alarm", args: []string{"alarm"}},
	{prog: "killself"},
	{prog: "blocked", valgrind: vgOrder},
	{prog: "restart", args: []string{"restart"}, qemu: qemuAlign},
	{prog: "restart", args: []string{"eintr"}},
	{prog: "resethand"},
	{prog: "nodefer", args: []string{"nodefer"}},
	{prog: "nodefer", args: []string{"defer"}},
	{prog: "faultinfo", args: []string{"segv"}, pending: needCallFlags, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"segv"}, flags: []string{"--max-blocks", "1"}, pending: needCallFlags, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"segv"}, flags: []string{"--strict-flags"}, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"segv"}, flags: []string{"--strict-flags", "--max-blocks", "1"}, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"ill"}, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"fpe"}, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"trap"}, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"bus"}, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "faultinfo", args: []string{"busshared"}, valgrind: vgFaultState, qemu: qemuFaultState},
	{prog: "smc", args: []string{"imm"}},
	{prog: "smc", args: []string{"mprotect"}},
	{prog: "smc", args: []string{"remap"}},
	{prog: "minijit"},
}

// outcome is how one run of a program ended.
type outcome struct {
	// stdout and stderr are all the run wrote.
	stdout, stderr string
	// code is the exit status, sig the signal that killed the process
	// (0 if it exited).
	code int
	sig  syscall.Signal
	// timedOut is set when the run was killed at its timeout.
	timedOut time.Duration
	// err is set when the run could not be made.
	err error
}

// status says how the run ended, as the table shows it.
func (o *outcome) status() string {
	switch {
	case o.err != nil:
		return "error: " + o.err.Error()
	case o.timedOut != 0:
		return fmt.Sprintf("timed out after %v", o.timedOut)
	case o.sig != 0:
		return "killed by " + unix.SignalName(o.sig)
	}
	return fmt.Sprintf("exit %d", o.code)
}

// goTrace are what a Go runtime crash prints, which must never come out
// of reachvm running a program, whatever the program does.
var goTrace = []string{"goroutine ", "runtime.", "signal arrived during cgo execution"}

// differs says how got differs from want (stdout and status), or "".
// With reachvm set, a Go runtime trace on got's stderr is a difference
// too.
func differs(want, got *outcome, reachvm bool) string {
	var d []string
	if got.status() != want.status() {
		d = append(d, fmt.Sprintf("%s, native %s", got.status(), want.status()))
	}
	if got.stdout != want.stdout {
		d = append(d, "stdout "+firstDiff(want.stdout, got.stdout))
	}
	if reachvm && hasGoTrace(got.stderr) {
		d = append(d, fmt.Sprintf("a Go runtime trace on stderr: %.300q", got.stderr))
	}
	return strings.Join(d, "; ")
}

// firstDiff shows the first line where got differs from want.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl || i >= len(w) || i >= len(g) {
			return fmt.Sprintf("line %d: %q, native %q", i+1, gl, wl)
		}
	}
	return "differs"
}

// runOutcome runs cmd with a timeout and returns how it ended.
func runOutcome(timeout time.Duration, name string, args ...string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	return finish(ctx, cmd, timeout)
}

// finish runs cmd, made with ctx (whose deadline is timeout away), and
// returns how it ended.
func finish(ctx context.Context, cmd *exec.Cmd, timeout time.Duration) outcome {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		o.timedOut = timeout
	case err == nil || errors.As(err, &ee):
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			o.sig = ws.Signal()
		} else {
			o.code = ws.ExitStatus()
		}
	default:
		o.err = err
	}
	return o
}

// runUnderReachvm runs `reachvm run FLAGS PROG ARGS` in a child process
// (this test binary, as TestRun does: runAsChild calls run, reachvm's
// own main), with a timeout.
func runUnderReachvm(timeout time.Duration, flags []string, prog string, args ...string) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRunChild$")
	a := append(append(append([]string{}, flags...), prog), args...)
	cmd.Env = append(os.Environ(), "REACHVM_RUN_ARGS="+strings.Join(a, "\x1f"))
	return finish(ctx, cmd, timeout)
}

// Timeouts: a case that passes runs in milliseconds natively (alarm's
// alarm mode in a second); a pending one is expected to fail, possibly
// by hanging.
const (
	transTimeout   = 20 * time.Second
	pendingTimeout = 5 * time.Second
)

// transRow is one case as one kind of executable, and its runs.
type transRow struct {
	c *transCase
	// kind is kernels.Exec or kernels.PIE, path the program so built.
	kind, path string
	// native, reachvm, valgrind and qemu are the runs, each written by
	// one goroutine and read after all are done (the zero outcome for
	// a run not made).
	native, reachvm, valgrind, qemu outcome
}

// TestTransparency runs every transparency case as ET_EXEC and static PIE
// (ET_EXEC only with -short), natively and under `reachvm run`, and
// compares standard output, exit status and the terminating signal;
// reachvm's stderr must hold no Go runtime trace. Where valgrind and qemu-x86_64 are installed, each case
// runs under them too, as a check of the programs themselves (the same
// output from two other translators). The runs go on concurrently, each
// with a timeout; a table of every case's outcome is logged.
func TestTransparency(t *testing.T) {
	valgrind, _ := exec.LookPath("valgrind")
	qemu, _ := exec.LookPath("qemu-x86_64")
	if valgrind == "" {
		t.Log("valgrind is not installed: its runs are skipped")
	}
	if qemu == "" {
		t.Log("qemu-x86_64 is not installed: its runs are skipped")
	}
	kinds := []string{kernels.Exec, kernels.PIE}
	if testing.Short() {
		kinds = kinds[:1]
	}
	var rows []*transRow
	for i := range transCases {
		for _, kind := range kinds {
			rows = append(rows, &transRow{c: &transCases[i], kind: kind})
		}
	}
	// Build, then run, concurrently: most of a run is waiting (process
	// start, a timer, a timeout).
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var buildErr error
	built := map[string]string{}
	var keys [][2]string
	seen := map[[2]string]bool{}
	for _, r := range rows {
		if k := [2]string{r.c.prog, r.kind}; !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := kernels.Program(k[0], k[1])
			mu.Lock()
			defer mu.Unlock()
			built[k[0]+" "+k[1]] = p
			if err != nil && buildErr == nil {
				buildErr = err
			}
		}()
	}
	wg.Wait()
	if errors.Is(buildErr, kernels.ErrNoCompiler) {
		t.Skip(buildErr)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	start := time.Now()
	for _, r := range rows {
		r.path = built[r.c.prog+" "+r.kind]
		timeout := transTimeout
		if r.c.pending != "" {
			timeout = pendingTimeout
		}
		jobs := []func(){
			func() { r.native = runOutcome(transTimeout, r.path, r.c.args...) },
			func() { r.reachvm = runUnderReachvm(timeout, r.c.flags, r.path, r.c.args...) },
		}
		// valgrind and qemu check the programs, not reachvm: once
		// each, as ET_EXEC (the native runs check that the PIE prints
		// the same).
		tools := r.kind == kernels.Exec && len(r.c.flags) == 0
		if valgrind != "" && tools {
			// Precise register state at every instruction, as at a
			// fault natively (valgrind otherwise updates some
			// registers only at the end of a block).
			vargs := append([]string{"--tool=none", "-q", "--vex-iropt-register-updates=allregs-at-each-insn", r.path}, r.c.args...)
			jobs = append(jobs, func() { r.valgrind = runOutcome(transTimeout, valgrind, vargs...) })
		}
		if qemu != "" && tools {
			qargs := append([]string{r.path}, r.c.args...)
			jobs = append(jobs, func() { r.qemu = runOutcome(transTimeout, qemu, qargs...) })
		}
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				j()
			}()
		}
	}
	wg.Wait()
	t.Logf("%d cases as %s, run in %v", len(transCases), strings.Join(kinds, " and "), time.Since(start).Round(time.Millisecond))
	// The programs print nothing that depends on where they are loaded.
	byCase := map[*transCase]*transRow{}
	for _, r := range rows {
		if r.kind == kernels.Exec {
			byCase[r.c] = r
		} else if e := byCase[r.c]; e != nil {
			if d := differs(&e.native, &r.native, false); d != "" {
				t.Errorf("%s: the PIE differs from the ET_EXEC natively: %s", r.c.name(), d)
			}
		}
	}
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tkind\tnative\treachvm\tvalgrind\tqemu\tstate")
	passing, pending := 0, 0
	for _, r := range rows {
		name := r.c.name() + " " + r.kind
		state := "passes"
		rd := differs(&r.native, &r.reachvm, true)
		if r.c.pending != "" {
			state = "pending: " + r.c.pending
			pending++
		} else {
			passing++
		}
		if rd != "" && r.c.pending == "" {
			state = "FAILS"
		}
		if rd == "" && r.c.pending != "" {
			state = "PASSES, still marked pending"
		}
		tools := r.kind == kernels.Exec && len(r.c.flags) == 0
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.c.name(), r.kind,
			r.native.status(), verdict(&r.native, &r.reachvm, true, "", true), verdict(&r.native, &r.valgrind, valgrind != "" && tools, r.c.valgrind, false),
			verdict(&r.native, &r.qemu, qemu != "" && tools, r.c.qemu, false), state)
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			if r.native.err != nil || r.native.timedOut != 0 {
				t.Fatalf("native run: %s", r.native.status())
			}
			switch {
			case r.c.pending == "" && rd != "":
				t.Errorf("under reachvm: %s\nreachvm stderr: %.1000s", rd, r.reachvm.stderr)
			case r.c.pending != "" && rd == "":
				t.Errorf("passes under reachvm: drop its pending mark (%s)", r.c.pending)
			case r.c.pending != "":
				t.Logf("pending (%s): %s", r.c.pending, rd)
			}
			tools := r.kind == kernels.Exec && len(r.c.flags) == 0
			checkTool(t, "valgrind", valgrind != "" && tools, &r.native, &r.valgrind, r.c.valgrind)
			checkTool(t, "qemu", qemu != "" && tools, &r.native, &r.qemu, r.c.qemu)
		})
	}
	tw.Flush()
	t.Logf("%d pass, %d pending:\n%s", passing, pending, table.String())
}

// verdict is one cell of the table: "same", or how the run ended when it
// differs from native, or "-" when it was not made.
func verdict(native, got *outcome, ran bool, known string, reachvm bool) string {
	switch {
	case !ran:
		return "-"
	case differs(native, got, reachvm) == "":
		return "same"
	case known != "":
		return "differs (known)"
	}
	v := got.status()
	if got.status() == native.status() {
		v = "stdout differs"
		if got.stdout == native.stdout {
			v = ""
		}
	}
	if reachvm && hasGoTrace(got.stderr) {
		v = strings.TrimPrefix(v+", Go trace", ", ")
	}
	return v
}

// checkTool compares a run under valgrind or qemu with native: they must
// match unless the case says how the tool differs, which is then logged.
func checkTool(t *testing.T, tool string, ran bool, native, got *outcome, known string) {
	t.Helper()
	if !ran {
		return
	}
	d := differs(native, got, false)
	switch {
	case d != "" && known == "":
		t.Errorf("under %s: %s\n%s stderr: %.1000s", tool, d, tool, got.stderr)
	case d != "":
		t.Logf("under %s, as known (%s): %s", tool, known, d)
	case known != "":
		t.Logf("under %s: the same as native, though marked as differing (%s)", tool, known)
	}
}

// hasGoTrace reports whether s holds a Go runtime trace.
func hasGoTrace(s string) bool {
	for _, m := range goTrace {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
