//go:build linux && amd64

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachvm/reachvm/jit/kernels"
)

// distCase is a distribution program's run: its command line (the
// program looked for in PATH), what it reads on standard input, and a
// check of its output besides the native run's.
type distCase struct {
	name  string
	argv  []string
	stdin []byte
}

// run1 runs argv (under reachvm if self is set) with stdin and returns
// its outcome.
func run1(self string, argv []string, stdin []byte) outcome {
	const timeout = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if self != "" {
		argv = append([]string{self, "run"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(stdin)
	return finish(ctx, cmd, timeout)
}

// sameOutcome fails t unless got (under reachvm) is want (native):
// standard output and error, status, signal.
func sameOutcome(t *testing.T, want, got outcome) {
	t.Helper()
	if got.err != nil || want.err != nil {
		t.Fatalf("could not run: native %v, reachvm %v", want.err, got.err)
	}
	if got.timedOut != 0 {
		t.Fatalf("still running under reachvm after %v; stderr %q", got.timedOut, got.stderr)
	}
	if got.code != want.code || got.sig != want.sig {
		t.Errorf("status %d signal %v under reachvm, %d %v natively; stderr %q", got.code, got.sig, want.code, want.sig, got.stderr)
	}
	if got.stdout != want.stdout {
		t.Errorf("standard output differs (%d bytes, natively %d): %s", len(got.stdout), len(want.stdout), firstDiff(want.stdout, got.stdout))
	}
	if got.stderr != want.stderr {
		t.Errorf("standard error %q under reachvm, %q natively", got.stderr, want.stderr)
	}
}

// textFile writes n bytes of random lines (seeded: the same every time)
// into dir and returns its path.
func textFile(t *testing.T, dir string, n int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		w := 1 + r.IntN(12)
		for i := range w {
			if i > 0 {
				b.WriteByte(' ')
			}
			for range 1 + r.IntN(9) {
				b.WriteByte(byte('a' + r.IntN(26)))
			}
		}
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, "text")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDistributionPrograms runs the system's own dynamic programs (ld.so,
// the C library and whatever they load, translated) natively and under
// `reachvm run` built as a PIE, besides TestProgramSuite's rows (true, ls,
// cat, sort, gzip|gunzip, sha256sum, sqlite3 :memory:): the same standard
// output and error, the same status, for echo, false, a failing ls, cat of
// its standard input, gzip, a shell script, env running env, sqlite3 with a database in WAL mode (its
// index mapped MAP_SHARED), python3 (no threads: TestProgramSuite's
// python3 row uses them), each side of gzip | gunzip under its own
// reachvm, and a dynamic program linked at 0x400000 (the C library's libc
// test program built without -pie), which shows why reachvm is built as a
// PIE here. A program the system lacks is skipped, saying so.
func TestDistributionPrograms(t *testing.T) {
	if _, err := os.Stat("/lib64/ld-linux-x86-64.so.2"); err != nil {
		t.Skipf("no dynamic loader: %v", err)
	}
	dir := t.TempDir()
	self := pieReachvm(t)
	text := textFile(t, dir, 1<<20)
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh -e\necho \"script $0 $1\" $(printf %s \"$2\" | tr a-z A-Z)\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []distCase{
		{name: "false", argv: []string{"false"}},
		{name: "echo", argv: []string{"echo", "hi"}},
		{name: "ls-missing", argv: []string{"ls", "/nonexistent-reachvm"}},
		{name: "cat-stdin", argv: []string{"cat"}, stdin: []byte("from standard input\n")},
		{name: "gzip", argv: []string{"gzip", "-c", text}},
		// A script: its interpreter (dash, a dynamic program) runs it.
		{name: "script", argv: []string{script, "one", "two"}},
		// env executes its command: followed under reachvm.
		{name: "env", argv: []string{"env", "-i", "A=b", "env"}},
		// A database file in WAL mode: its -shm index is mapped
		// MAP_SHARED.
		{name: "sqlite3-wal", argv: []string{"sqlite3", filepath.Join(dir, "wal.db"),
			"pragma journal_mode=wal; drop table if exists t; create table t(a, b); " +
				"insert into t values (1, 'x'), (2, 'y'); update t set a = a * 10; select sum(a), group_concat(b) from t;"}},
		// /usr/bin's: python3 in PATH may be a script (pyenv's shim),
		// which would need execve to go on.
		{name: "python3", argv: []string{"/usr/bin/python3", "-c",
			"import sys, os, hashlib, json; print(sum(i*i for i in range(200000)), sys.executable, os.readlink('/proc/self/exe')); " +
				"print(hashlib.sha256(b'reachvm').hexdigest(), json.dumps({'a': [1, 2.5, None]}, sort_keys=True)); sys.exit(3)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := exec.LookPath(c.argv[0]); err != nil {
				t.Skipf("%s is not installed: %v", c.argv[0], err)
			}
			want := run1("", c.argv, c.stdin)
			got := run1(self, c.argv, c.stdin)
			sameOutcome(t, want, got)
		})
	}
	t.Run("gzip-gunzip", func(t *testing.T) {
		if _, err := exec.LookPath("gzip"); err != nil {
			t.Skipf("gzip is not installed: %v", err)
		}
		// Each side of the pipe under its own reachvm.
		zip := exec.Command(self, "run", "gzip", "-c", text)
		unzip := exec.Command(self, "run", "gzip", "-dc")
		pipe, err := zip.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		unzip.Stdin = pipe
		var out, errs bytes.Buffer
		unzip.Stdout, unzip.Stderr, zip.Stderr = &out, &errs, &errs
		if err := zip.Start(); err != nil {
			t.Fatal(err)
		}
		if err := unzip.Run(); err != nil {
			t.Errorf("gunzip under reachvm: %v; stderr %q", err, errs.String())
		}
		if err := zip.Wait(); err != nil {
			t.Errorf("gzip under reachvm: %v; stderr %q", err, errs.String())
		}
		want, err := os.ReadFile(text)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("the round trip gives %d bytes, not the file's %d", out.Len(), len(want))
		}
	})
	t.Run("libc-0x400000", func(t *testing.T) {
		prog, err := kernels.Dynamic("libc", kernels.ExecDefault)
		if errors.Is(err, kernels.ErrNoCompiler) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := run1("", []string{prog, "4"}, nil)
		got := run1(self, []string{prog, "4"}, nil)
		sameOutcome(t, want, got)
		if want.code != 4 || !strings.Contains(want.stdout, "atexit") {
			t.Errorf("the program itself misbehaves natively: status %d, output %q", want.code, want.stdout)
		}
	})
}

// BenchmarkStartup runs /bin/true natively and under `reachvm run` (a
// PIE build), a process each: what reachvm adds to a program's start
// (its own start, vmcode, loading, translating ld.so's and libc's start
// code) and exit. Besides the wall time it reports the process's page
// faults (faults/op: minor and major, from its rusage) and CPU time
// (cpu-ms/op: user and system), which a loaded machine disturbs less.
// The rusage counts the pages reachvm populates ahead of use (madvise
// MADV_POPULATE_*) as faults too, though no fault is taken for them:
// perf stat's page-faults counts only the faults taken, about 330 fewer
// for reachvm run /bin/true.
func BenchmarkStartup(b *testing.B) {
	if _, err := os.Stat("/bin/true"); err != nil {
		b.Skip(err)
	}
	self := pieReachvm(b)
	for _, c := range []struct {
		name string
		argv []string
	}{{"native", []string{"/bin/true"}}, {"reachvm", []string{self, "run", "/bin/true"}}} {
		b.Run(c.name, func(b *testing.B) {
			var faults, cpu float64
			for b.Loop() {
				cmd := exec.Command(c.argv[0], c.argv[1:]...)
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
				faults += float64(ru.Minflt + ru.Majflt)
				cpu += float64(time.Duration(syscall.TimevalToNsec(ru.Utime)+syscall.TimevalToNsec(ru.Stime))) / float64(time.Millisecond)
			}
			b.ReportMetric(faults/float64(b.N), "faults/op")
			b.ReportMetric(cpu/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkClockGettime runs the clock program, a loop of
// clock_gettime(CLOCK_MONOTONIC) calls, natively, under reachvm with the
// vDSO translated (the default) and without it (every call a system
// call, a cache exit each): ns/op is one call, as the program times its
// own loop of clockCalls calls, one process an iteration.
func BenchmarkClockGettime(b *testing.B) {
	const clockCalls = 200000
	prog, err := kernels.Dynamic("clock", kernels.PIE)
	if errors.Is(err, kernels.ErrNoCompiler) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	self := pieReachvm(b)
	for _, c := range []struct {
		name string
		pre  []string
	}{{"native", nil}, {"reachvm-vdso", []string{self, "run"}}, {"reachvm-syscall", []string{self, "run", "--no-vdso"}}} {
		b.Run(c.name, func(b *testing.B) {
			argv := append(append(append([]string{}, c.pre...), prog), fmt.Sprint(clockCalls))
			var total, runs float64
			for b.Loop() {
				out, err := exec.Command(argv[0], argv[1:]...).Output()
				if err != nil {
					b.Fatal(err)
				}
				var ns float64
				if _, err := fmt.Sscan(string(out), &ns); err != nil {
					b.Fatalf("%q: %v", out, err)
				}
				total += ns
				runs++
			}
			b.ReportMetric(total/runs/clockCalls, "ns/op")
		})
	}
}
