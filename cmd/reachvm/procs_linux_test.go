//go:build linux && amd64

package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/jit/kernels"
)

// procsProgram builds the procs program (jit/kernels/c/programs/procs.c)
// as ET_EXEC.
func procsProgram(t *testing.T) string {
	t.Helper()
	p, err := kernels.Program("procs", kernels.Exec)
	if errors.Is(err, kernels.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// reachvmPIE returns the PIE reachvm the tests share (pieReachvm): a
// real reachvm, as /proc/self/exe of a followed execve, that can also
// load programs linked at 0x400000.
func reachvmPIE(t *testing.T) string {
	t.Helper()
	return pieReachvm(t)
}

// statsLines returns the exit lines --stats printed on stderr ("reachvm
// run: PROG exited N"), one per reachvm that ended.
func statsLines(stderr string) []string {
	var exits []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "reachvm run: ") && strings.Contains(l, " exited ") {
			exits = append(exits, l)
		}
	}
	return exits
}

// TestRunExec runs the procs program's execve modes under `reachvm run`
// (following the new program under reachvm, and with --exec-native) and
// natively: the same output (the new program's argv, envp, AT_EXECFN,
// mask and dispositions; execve's errors). --stats says where the new
// program ran: a followed one prints its own counters, the program that
// exec'd it none (its process image is gone), a native one none.
func TestRunExec(t *testing.T) {
	prog := procsProgram(t)
	dir := t.TempDir()
	cases := []struct {
		args []string
		// followed is the exit lines --stats prints when following:
		// the new program's (PROG, or the script's interpreter, is
		// prog itself); PROG's own when it did not exec; -1 when it
		// depends on what reachvm can load.
		followed, native int
		// ran is the program the followed exit lines name: prog, or
		// this one.
		ran string
	}{
		{[]string{"exec", prog}, 1, 0, ""},
		{[]string{"script", prog, dir}, 1, 0, ""},
		{[]string{"forkexec", prog}, 1, 1, ""},
		{[]string{"execerr", dir}, 1, 1, ""},
		// A dynamic program (ld.so its interpreter): followed.
		{[]string{"exec", "/bin/echo"}, 1, 0, "/bin/echo"},
	}
	for _, c := range cases {
		want := runOutcome(transTimeout, prog, c.args...)
		for _, native := range []bool{false, true} {
			flags := []string{"--stats"}
			wantLines := c.followed
			if native {
				flags, wantLines = append(flags, "--exec-native"), c.native
			}
			got := runUnderReachvm(transTimeout, flags, prog, c.args...)
			name := strings.Join(append(flags, c.args[0]), " ")
			if d := differs(&want, &got, true); d != "" {
				t.Errorf("%s: %s\nstderr: %s", name, d, got.stderr)
			}
			lines := statsLines(got.stderr)
			if wantLines >= 0 && len(lines) != wantLines {
				t.Errorf("%s: --stats printed %d exit lines, want %d: %q", name, len(lines), wantLines, lines)
			}
			ran := prog
			if c.ran != "" && !native {
				ran = c.ran
			}
			for _, l := range lines {
				if wantLines >= 0 && !strings.Contains(l, ran+" exited ") {
					t.Errorf("%s: --stats of another program: %q", name, l)
				}
			}
		}
	}
}

// TestRunExecBinary follows an execve with a real reachvm binary (built as
// a PIE), whose /proc/self/exe is reachvm itself: the new program's output
// is the native one, and its --stats say it ran under reachvm.
func TestRunExecBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds reachvm")
	}
	prog := procsProgram(t)
	exe := reachvmPIE(t)
	want := runOutcome(transTimeout, prog, "exec", prog)
	got := runOutcome(transTimeout, exe, "run", "--stats", "--max-blocks", "2", prog, "exec", prog)
	if d := differs(&want, &got, true); d != "" {
		t.Errorf("%s", d)
	}
	if lines := statsLines(got.stderr); len(lines) != 1 || !strings.Contains(lines[0], prog+" exited 0") {
		t.Errorf("--stats exit lines %q, want the new program's", lines)
	}
}

// TestRunInherit checks run's hidden flags, which carry what an execve
// keeps to the reachvm that follows it: argv[0], the mask, the ignored
// signals and AT_EXECFN reach the program; a bad signal set is refused.
func TestRunInherit(t *testing.T) {
	prog := procsProgram(t)
	got := runUnderReachvm(transTimeout, []string{"--argv0=", "--sigmask=0x801", "--sigign=4000", "--execfn=/the/name"}, prog, "show", "more")
	for _, want := range []string{"argc 3\n", "argv[0] \"\"\n", "argv[1] \"show\"\n", "argv[2] \"more\"\n",
		"AT_EXECFN /the/name\n", "blocked 0x801\n", "SIGTERM ignored\n", "SIGUSR1 default\n"} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("output lacks %q:\n%s\nstderr: %s", want, got.stdout, got.stderr)
		}
	}
	got = runUnderReachvm(transTimeout, nil, prog, "show")
	for _, want := range []string{"argv[0] \"" + prog + "\"\n", "AT_EXECFN " + prog + "\n", "blocked 0x0\n", "SIGTERM not ignored\n"} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("without the flags, output lacks %q:\n%s", want, got.stdout)
		}
	}
	_, stderr, code := cli("run", "--sigmask=zz", prog)
	if code != 2 || !strings.Contains(stderr, "--sigmask") {
		t.Errorf("--sigmask=zz: exit %d, stderr %q", code, stderr)
	}
	usage, _, _ := cli("help", "run")
	for _, f := range []string{"--argv0", "--sigmask", "--sigign", "--execfn"} {
		if strings.Contains(usage, f) {
			t.Errorf("the usage shows the hidden %s", f)
		}
	}
	if !strings.Contains(usage, "--exec-native") {
		t.Error("the usage lacks --exec-native")
	}
}

// procsTimeout bounds a procs run: each takes milliseconds.
const procsTimeout = 20 * time.Second

// TestRunProcs runs the procs program's process modes under `reachvm run`
// and natively: the same output and status; --stats counts the forks.
func TestRunProcs(t *testing.T) {
	prog := procsProgram(t)
	for _, mode := range []string{"fork", "vfork", "spawn", "clone3", "signal", "pipe", "regs"} {
		want := runOutcome(procsTimeout, prog, mode)
		got := runUnderReachvm(procsTimeout, []string{"--json"}, prog, mode)
		if d := differs(&want, &got, true); d != "" {
			t.Errorf("%s: %s\nstderr: %s", mode, d, got.stderr)
		}
		if !strings.Contains(got.stderr, `"forks":1`) {
			t.Errorf("%s: --json does not count one fork: %s", mode, got.stderr)
		}
	}
}

// TestRunLibcBinary runs a static glibc program linked at 0x400000 (gcc
// -static's default, which only a reachvm built as a PIE can load) under
// `reachvm run`: system(), popen, posix_spawn and a shell pipeline give
// the native output and status.
func TestRunLibcBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds reachvm")
	}
	prog, err := kernels.Libc("procs", kernels.Static)
	if errors.Is(err, kernels.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	exe := reachvmPIE(t)
	for _, mode := range []string{"fork", "system", "popen", "spawn", "pipeline"} {
		want := runOutcome(procsTimeout, prog, mode)
		got := runOutcome(procsTimeout, exe, "run", prog, mode)
		if d := differs(&want, &got, true); d != "" {
			t.Errorf("%s: %s\nstderr: %s", mode, d, got.stderr)
		}
	}
}
