//go:build linux && amd64

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/reachvm/reachvm/bench"
	"github.com/reachvm/reachvm/jit/kernels"
)

// The transparency suite of real programs: C and C++ programs built with
// glibc (testdata/progs, each static, static PIE and dynamic) and programs
// of the distribution, each run natively and under `reachvm run`, which
// must give the same standard output, standard error and exit status (or
// death by the same signal). A row that needs what reachvm does not do
// yet is pending and says what it waits for, and the suite fails when a
// pending row passes, so that the list stays true.

// need is something programs need that reachvm may not do yet: a short
// name for the table, which needWhy explains.
type need string

// What the suite's programs need beyond what reachvm has always run.
const (
	needAppFS      need = "app-fs"
	needStartCalls need = "start-calls"
	needInterp     need = "interp"
	needThreads    need = "threads"
	needFork       need = "fork"
	needVfork      need = "vfork"
	needExec       need = "exec"
)

// needWhy says what each need is, in report order.
var needWhy = []struct {
	n   need
	why string
}{
	{needAppFS, "the application's own FS: PT_TLS, arch_prctl(ARCH_SET_FS)"},
	{needStartCalls, "glibc's start-up calls: set_tid_address, set_robust_list, rseq"},
	{needInterp, "PT_INTERP: ld.so, the full auxiliary vector, the vDSO"},
	{needThreads, "threads: clone3 or clone with CLONE_VM|CLONE_THREAD"},
	{needFork, "fork: clone without CLONE_VM"},
	{needVfork, "vfork, and posix_spawn's clone(CLONE_VM|CLONE_VFORK)"},
	{needExec, "execve followed under reachvm"},
}

// reachvmLacks are the needs reachvm does not meet yet: a row that has
// any of them is pending, and is expected to differ from native. When a
// row passes while still pending, reachvm has learnt what it needed: the
// test fails, naming the row and the needs to take out of this list.
// needAppFS and needStartCalls left it when static glibc programs first
// ran; needFork, needVfork and needExec when processes did; needInterp
// when dynamic programs did; needThreads when threads did.
var reachvmLacks = map[need]bool{}

// kindNeeds are what every program of a kind needs: glibc's start-up
// (all of them), ld.so (the dynamic ones and the distribution's).
var kindNeeds = map[string][]need{
	"static":     {needAppFS, needStartCalls},
	"static-pie": {needAppFS, needStartCalls},
	"dynamic":    {needAppFS, needStartCalls, needInterp},
	distKind:     {needAppFS, needStartCalls, needInterp},
	freeKind:     nil,
}

// The kinds of rows that are not built from testdata/progs: programs of
// the distribution, run as installed, and a freestanding program (no
// libc) that checks the harness itself.
const (
	distKind = "dist"
	freeKind = "freestanding"
)

// suiteCase is one program of the suite and how it is run.
type suiteCase struct {
	// name names the case: the source's base name, or the program's.
	name string
	// src is a source in testdata/progs, built as every progKind and
	// run with args. Else argv is a program of the distribution (its
	// name, found by bench.FindELF) and its arguments, run as installed,
	// or pipeline is set.
	src  string
	args []string
	argv []string
	// pipeline is a script that /bin/sh runs natively in both runs: $R
	// starts each stage, empty natively and `reachvm run -q` under
	// reachvm; $P_NAME is the path of each program NAME in uses.
	pipeline string
	uses     []string
	// stdin is the program's standard input.
	stdin string
	// needs are what the program needs beyond its kind's kindNeeds.
	needs []need
	// threaded marks a program whose threads or processes race: it runs
	// suiteReps times in a row, every run compared.
	threaded bool
}

// The input files' path is $IN in args, argv and pipelines: 1 MiB of text.
const inArg = "$IN"

// shellNeeds are what a program that runs /bin/sh -c needs: posix_spawn,
// whose child runs natively from the clone on (so the dynamic shell it
// execs runs natively too), and its pipeline's forks.
var shellNeeds = []need{needVfork, needExec, needFork}

// suiteCases are the programs, in report order.
var suiteCases = []suiteCase{
	{name: "hello", src: "hello.c"},
	{name: "floats", src: "floats.c"},
	{name: "churn", src: "churn.c"},
	{name: "qsort", src: "qsort.c"},
	{name: "tls", src: "tls.c"},
	{name: "threads", src: "threads.c", needs: []need{needThreads}, threaded: true},
	{name: "fork", src: "fork.c", needs: []need{needFork}, threaded: true},
	{name: "vfork", src: "vfork.c", needs: []need{needVfork, needExec}, threaded: true},
	{name: "system", src: "system.c", needs: shellNeeds, threaded: true},
	{name: "popen", src: "popen.c", needs: shellNeeds, threaded: true},
	{name: "env", src: "env.c", args: []string{"first", "two words", ""}},
	{name: "fileio", src: "fileio.c"},
	{name: "signal", src: "signal.c"},
	{name: "closeall", src: "closeall.c", needs: []need{needThreads}},
	{name: "robust", src: "robust.c", needs: []need{needThreads}, threaded: true},
	{name: "cxx", src: "cxx.cc", needs: []need{needThreads}, threaded: true},

	{name: "true", argv: []string{"true"}},
	{name: "ls", argv: []string{"ls", "-la", "/usr/lib"}},
	{name: "cat", argv: []string{"cat", inArg}},
	// One thread: GNU sort sorts in threads on a larger machine.
	{name: "sort", argv: []string{"sort", "--parallel=1", inArg}},
	// gunzip is a script that execs gzip -d: each stage is gzip itself.
	{name: "gzip|gunzip", pipeline: `$R "$P_gzip" -c "$IN" | $R "$P_gzip" -dc`, uses: []string{"gzip"}},
	{name: "sha256sum", argv: []string{"sha256sum", inArg}},
	{name: "python3", argv: []string{"python3", "-c", `from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(max_workers=4) as pool:
    squares = list(pool.map(lambda x: x * x, range(2000)))
print(len(squares), sum(squares), squares[-1])`}, needs: []need{needThreads}, threaded: true},
	{name: "sqlite3", argv: []string{"sqlite3", ":memory:"}, stdin: `CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000)
INSERT INTO t SELECT x, 'name-' || (x * 7919 % 1000), x * x % 997 FROM c;
CREATE INDEX t_v ON t(v);
SELECT count(*), sum(v), min(name), max(name) FROM t;
SELECT v % 7 AS k, count(*), sum(id) FROM t GROUP BY k ORDER BY k;
UPDATE t SET v = v + 1 WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(v) FROM t;
SELECT id, name, v FROM t ORDER BY v DESC, id LIMIT 3;
`},
	{name: "bash", argv: []string{"bash", "-c", `echo one two three | tr a-z A-Z | sed 's/O/0/g'
(cd /usr && pwd; exit 3)
echo "subshell exited $?"
x=$(printf '%s-%s' command substitution)
echo "$x"
for i in 1 2 3; do echo "loop $i"; done | sort -r
exit 5`}, needs: []need{needFork, needExec}, threaded: true},
}

// suiteReps is how many times a threaded case runs in a row: 20 under
// REACHVM_SOAK=1 (CI's race pass sets it), 2 otherwise.
func suiteReps() int {
	if os.Getenv("REACHVM_SOAK") == "1" {
		return 20
	}
	return 2
}

// Timeouts: a passing run takes well under a second natively; a pending
// one is expected to fail, possibly by hanging.
const (
	suiteTimeout        = 60 * time.Second
	suitePendingTimeout = 10 * time.Second
)

// suiteRow is one case as one kind, and its runs.
type suiteRow struct {
	c    *suiteCase
	kind string
	// path is the program's executable ("" for a pipeline), skip why
	// the row is not run ("": it is).
	path, skip string
	// pending are the row's needs that reachvm lacks.
	pending []need
	// native and reachvm are the last runs made; diff says how the
	// reachvm run differed from native ("": every run was the same),
	// unstable how two native runs differed. runs counts the reachvm
	// runs. Written by the row's goroutine, read after it is done.
	native, reachvm outcome
	diff, unstable  string
	runs            int
}

// name is the row's name: the case, and the kind for a built program.
func (r *suiteRow) name() string {
	if r.c.src == "" {
		return r.c.name
	}
	return r.c.name + "/" + r.kind
}

// TestProgramSuite runs the suite: every row natively and under a PIE
// reachvm (which loads a static program at 0x400000), comparing standard
// output, standard error and how the run ended. A row that is not pending
// must be the same; a pending one must differ (it is logged with its
// needs). The three kinds of a built program must print the same
// natively, and a threaded program the same on every native run. A table
// of every row is logged.
func TestProgramSuite(t *testing.T) {
	self := pieReachvm(t)
	inputs := t.TempDir()
	in := filepath.Join(inputs, "in.txt")
	if err := os.WriteFile(in, suiteText(1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := suiteRows(t)
	// Run the rows concurrently: a run is mostly a process starting, or
	// a pending run failing at once.
	sem := make(chan struct{}, 2*runtime.NumCPU())
	var wg sync.WaitGroup
	start := time.Now()
	for _, r := range rows {
		if r.skip != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r.run(self, in, inputs)
		}()
	}
	wg.Wait()
	t.Logf("%d rows run in %v (%d runs of each threaded row)", len(rows), time.Since(start).Round(time.Millisecond), suiteReps())

	checkKindsAgree(t, rows)
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\tnative\treachvm\tstate")
	passing, pending, skipped := 0, 0, 0
	for _, r := range rows {
		state, cell := r.state(), ""
		switch {
		case r.skip != "":
			skipped++
			cell = "-"
		case r.diff == "":
			cell = "same"
		default:
			cell = r.reachvm.status()
			stderr := r.reachvm.stderr
			if r.path != "" {
				stderr = strings.ReplaceAll(stderr, r.path, filepath.Base(r.path))
			}
			if line := firstStderrLine(stderr); line != "" {
				cell += ": " + line
			}
		}
		if r.skip == "" && len(r.pending) > 0 {
			pending++
		} else if r.skip == "" {
			passing++
		}
		native := r.native.status()
		if r.skip != "" {
			native = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name(), native, cell, state)
		t.Run(strings.ReplaceAll(r.name(), "|", "-"), func(t *testing.T) {
			r.check(t)
		})
	}
	tw.Flush()
	table.WriteString("pending on:\n")
	for _, w := range needWhy {
		if reachvmLacks[w.n] {
			fmt.Fprintf(&table, "  %-12s %s\n", w.n, w.why)
		}
	}
	t.Logf("%d pass, %d pending, %d skipped:\n%s", passing, pending, skipped, table.String())
}

// suiteRows builds the programs (concurrently; the cache makes a second
// run fast) and returns the rows in report order, each with its program
// or why it is skipped.
func suiteRows(t *testing.T) []*suiteRow {
	t.Helper()
	var rows []*suiteRow
	// The harness's own check, which passes today: a freestanding
	// program (no libc) linked at 0x400000, where gcc -static links,
	// so that the PIE reachvm is shown to load there.
	free := &suiteCase{name: "freestanding-hello", args: []string{"4", "two words"}}
	hello, err := kernels.Program("hello", kernels.Exec, "-Wl,-Ttext-segment=0x400000")
	switch {
	case errors.Is(err, kernels.ErrNoCompiler):
		t.Skip(err)
	case err != nil:
		t.Fatal(err)
	}
	rows = append(rows, &suiteRow{c: free, kind: freeKind, path: hello})

	type built struct {
		path string
		err  error
	}
	results := map[string]*built{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for i := range suiteCases {
		c := &suiteCases[i]
		if c.src == "" {
			continue
		}
		for _, k := range progKinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				p, err := buildProg(c.src, k)
				mu.Lock()
				defer mu.Unlock()
				results[c.src+" "+k.name] = &built{p, err}
			}()
		}
	}
	wg.Wait()
	for i := range suiteCases {
		c := &suiteCases[i]
		if c.src == "" {
			r := &suiteRow{c: c, kind: distKind}
			r.skip = r.findPrograms()
			rows = append(rows, r)
			continue
		}
		dyn := results[c.src+" dynamic"]
		for _, k := range progKinds {
			b := results[c.src+" "+k.name]
			r := &suiteRow{c: c, kind: k.name, path: b.path}
			switch {
			case errors.Is(b.err, errNoCompiler):
				r.skip = b.err.Error()
			case b.err != nil && dyn.err == nil:
				// The source compiles: what fails is a static
				// library missing here (libc.a, libstdc++.a).
				r.skip = "cannot link it so here: " + firstStderrLine(b.err.Error())
			case b.err != nil:
				t.Fatalf("building %s: %v", c.src, b.err)
			}
			rows = append(rows, r)
		}
	}
	for _, r := range rows {
		for _, n := range append(append([]need{}, kindNeeds[r.kind]...), r.c.needs...) {
			if reachvmLacks[n] && !containsNeed(r.pending, n) {
				r.pending = append(r.pending, n)
			}
		}
	}
	return rows
}

// findPrograms resolves a distribution row's programs (argv[0], or those
// a pipeline uses) and returns why the row is skipped, or "".
func (r *suiteRow) findPrograms() string {
	if r.c.pipeline != "" {
		for _, u := range r.c.uses {
			if _, err := bench.FindELF(u); err != nil {
				return strings.TrimPrefix(err.Error(), "bench: ")
			}
		}
		return ""
	}
	p, err := bench.FindELF(r.c.argv[0])
	if err != nil {
		return strings.TrimPrefix(err.Error(), "bench: ")
	}
	r.path = p
	return ""
}

// command returns the row's command, natively or under reachvm (self),
// made with ctx, in dir, with the suite's environment.
func (r *suiteRow) command(ctx context.Context, self string, under bool, in, dir string) *exec.Cmd {
	env := append(os.Environ(), "REACHVM_SUITE=set by the suite", "REACHVM_SUITE_GONE=1", "IN="+in)
	var cmd *exec.Cmd
	if r.c.pipeline != "" {
		R := ""
		if under {
			R = self + " run -q"
		}
		env = append(env, "R="+R)
		for _, u := range r.c.uses {
			p, _ := bench.FindELF(u)
			env = append(env, "P_"+u+"="+p)
		}
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", r.c.pipeline)
	} else {
		args := r.c.args
		if r.kind == distKind {
			args = r.c.argv[1:]
		}
		argv := []string{r.path}
		for _, a := range args {
			argv = append(argv, strings.ReplaceAll(a, inArg, in))
		}
		if under {
			argv = append([]string{self, "run", "-q"}, argv...)
		}
		cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	cmd.Dir, cmd.Env = dir, env
	// A run that times out is killed with every process it started (a
	// shell's children hold its output pipes open), and Wait gives up on
	// the pipes soon after.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if r.c.stdin != "" {
		cmd.Stdin = strings.NewReader(r.c.stdin)
	}
	return cmd
}

// runIn runs the row once, natively or under reachvm, in a new empty
// directory under base, and returns how it ended.
func (r *suiteRow) runIn(self string, under bool, in, base string, timeout time.Duration) outcome {
	dir, err := os.MkdirTemp(base, "run-")
	if err != nil {
		return outcome{err: err}
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return finish(ctx, r.command(ctx, self, under, in, dir), timeout)
}

// run makes the row's runs: natively and under reachvm once, or
// suiteReps times in a row for a threaded case, stopping at the first
// reachvm run that differs.
func (r *suiteRow) run(self, in, base string) {
	reps := 1
	if r.c.threaded {
		reps = suiteReps()
	}
	timeout := suiteTimeout
	if len(r.pending) > 0 {
		timeout = suitePendingTimeout
	}
	var first outcome
	for i := range reps {
		r.native = r.runIn(self, false, in, base, suiteTimeout)
		if i == 0 {
			first = r.native
		} else if d := suiteDiffers(&first, &r.native); d != "" && r.unstable == "" {
			r.unstable = fmt.Sprintf("native run %d: %s", i+1, d)
		}
		r.reachvm = r.runIn(self, true, in, base, timeout)
		r.runs++
		if r.diff = suiteDiffers(&r.native, &r.reachvm); r.diff != "" {
			return
		}
	}
}

// suiteDiffers says how got differs from want: how it ended, its standard
// output, its standard error, a Go runtime trace; "" if in no way.
func suiteDiffers(want, got *outcome) string {
	d := differs(want, got, true)
	if got.stderr != want.stderr {
		d = strings.TrimPrefix(d+"; stderr "+firstDiff(want.stderr, got.stderr), "; ")
	}
	return d
}

// state is the row's state as the table shows it.
func (r *suiteRow) state() string {
	switch {
	case r.skip != "":
		return "skipped: " + r.skip
	case r.native.err != nil || r.native.timedOut != 0:
		return "NATIVE RUN FAILED"
	case len(r.pending) > 0 && r.diff == "":
		return "PASSES, still marked pending"
	case len(r.pending) > 0:
		return "pending: " + needsText(r.pending)
	case r.diff != "":
		return "FAILS"
	}
	return "passes"
}

// check is the row's subtest: a non-pending row is the same under
// reachvm on every run, a pending one differs.
func (r *suiteRow) check(t *testing.T) {
	if r.skip != "" {
		t.Skip(r.skip)
	}
	if r.native.err != nil || r.native.timedOut != 0 {
		t.Fatalf("native run: %s", r.native.status())
	}
	if r.unstable != "" {
		t.Errorf("the program prints differently from one native run to the next: %s", r.unstable)
	}
	switch {
	case len(r.pending) == 0 && r.diff != "":
		t.Errorf("under reachvm (run %d of the row): %s\nreachvm stderr: %.1000s", r.runs, r.diff, r.reachvm.stderr)
	case len(r.pending) > 0 && r.diff == "":
		t.Errorf("passes under reachvm (%d runs) though pending on %s: take what reachvm now does out of reachvmLacks", r.runs, needsText(r.pending))
	case len(r.pending) > 0:
		t.Logf("pending on %s: %s", needsText(r.pending), r.diff)
	}
}

// checkKindsAgree checks the programs themselves: a program's three kinds
// print the same and end the same natively (its own path, which the env
// case prints, aside).
func checkKindsAgree(t *testing.T, rows []*suiteRow) {
	t.Helper()
	first := map[*suiteCase]*suiteRow{}
	for _, r := range rows {
		if r.skip != "" || r.c.src == "" || r.native.err != nil {
			continue
		}
		f := first[r.c]
		if f == nil {
			first[r.c] = r
			continue
		}
		a, b := f.native, r.native
		a.stdout, a.stderr = strings.ReplaceAll(a.stdout, f.path, "PROG"), strings.ReplaceAll(a.stderr, f.path, "PROG")
		b.stdout, b.stderr = strings.ReplaceAll(b.stdout, r.path, "PROG"), strings.ReplaceAll(b.stderr, r.path, "PROG")
		if d := suiteDiffers(&a, &b); d != "" {
			t.Errorf("%s differs from %s natively: %s", r.name(), f.name(), d)
		}
	}
}

// needsText lists needs for a message, by their short names.
func needsText(ns []need) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = string(n)
	}
	return strings.Join(s, " ")
}

func containsNeed(ns []need, n need) bool {
	for _, x := range ns {
		if x == n {
			return true
		}
	}
	return false
}

// firstStderrLine returns the first non-empty line of s, at most 120
// bytes, for a table cell.
func firstStderrLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 120 {
				l = l[:120] + "..."
			}
			return l
		}
	}
	return ""
}

// suiteText returns n bytes of text or a line more: lines of words and numbers, the
// same every time, unsorted, for cat, sort, gzip and sha256sum.
func suiteText(n int) []byte {
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "kilo", "lima"}
	var b strings.Builder
	x := uint32(2463534242)
	next := func() uint32 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x
	}
	for b.Len() < n {
		for k := 1 + next()%9; k > 0; k-- {
			b.WriteString(words[next()%uint32(len(words))])
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d\n", next()%100000)
	}
	return []byte(b.String())
}
