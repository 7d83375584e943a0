//go:build linux && amd64

package jit

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// procsModes are the modes of the procs program that run alone, each
// compared with the native run: fork, vfork and clone children (detached
// to native execution), their signal state, a pipe, registers after the
// call.
var procsModes = []string{"fork", "killed", "vfork", "clone", "clonestack", "spawn", "clone3", "signal", "pipe", "eintr", "regs"}

// TestProcs runs each of procsModes under reachvm (ET_EXEC and static
// PIE) and natively (the ET_EXEC: a freestanding PIE does not relocate
// itself): the same output and status.
func TestProcs(t *testing.T) {
	ref := buildProgram(t, "procs", kern.Exec)
	for _, kind := range programKinds {
		prog := buildProgram(t, "procs", kind.name)
		for _, mode := range procsModes {
			t.Run(kind.name+"/"+mode, func(t *testing.T) {
				want, wantCode := runNative(t, ref, mode)
				got, stderr, code := runProgram(t, prog, kind.name == kern.PIE, mode)
				if code != wantCode || got != want {
					t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
				}
			})
		}
	}
}

// TestExec runs the procs program's execve modes natively and under
// reachvm: the new program's output (its argv, envp, AT_EXECFN, mask and
// dispositions), a script's interpreter, a detached child's execve, and
// the errors of execve that fail. Under reachvm the new program runs
// natively (no Options.Exec), or under reachvm again (follow: the
// child's Options.Exec execs this test binary's TestExecChild), which
// then says so on standard error.
func TestExec(t *testing.T) {
	ref := buildProgram(t, "procs", kern.Exec)
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
	}{
		{"exec", []string{"exec", ref}},
		{"forkexec", []string{"forkexec", ref}},
		{"script", []string{"script", ref, dir}},
		{"execerr", []string{"execerr", dir}},
	}
	for _, c := range cases {
		want, wantCode := runNative(t, ref, c.args...)
		for _, follow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/follow=%v", c.name, follow), func(t *testing.T) {
				env := []string{}
				if follow {
					env = append(env, "REACHVM_PROGRAM_FOLLOW=1")
				}
				got, stderr, code := runProgramEnv(t, ref, env, programTimeout, c.args...)
				if code != wantCode || got != want {
					t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
				}
				// The new program ran under reachvm only when followed
				// from a translated process: not after a detached
				// child's execve, and not for execve that fail.
				followed := strings.Contains(stderr, "followed: ")
				wantFollowed := follow && (c.name == "exec" || c.name == "script")
				if followed != wantFollowed {
					t.Errorf("followed under reachvm: %v, want %v (stderr %q)", followed, wantFollowed, stderr)
				}
			})
		}
	}
}

// followExec is the Options.Exec of the children of TestExec: it execs
// this test binary's TestExecChild with the request in its arguments
// (the environment is the program's own).
func followExec(req *ExecRequest) (string, []string, []string) {
	argv := []string{os.Args[0], "-test.run=^TestExecChild$", "--",
		strconv.FormatUint(req.Inherit.Mask, 16), strconv.FormatUint(req.Inherit.Ignored, 16), "fn=" + req.Inherit.ExecFn, req.Path}
	return "/proc/self/exe", append(argv, req.Argv...), req.Envp
}

// TestExecChild is not a test: exec'd by followExec with the arguments
// mask, ignored, fn=AT_EXECFN, path and the new program's argv, it runs the program
// under a fresh machine (which follows the program's own execve) with
// its environment and that signal state, and exits with its status.
func TestExecChild(t *testing.T) {
	args := flag.Args()
	if len(args) < 5 || !strings.HasSuffix(os.Args[1], "TestExecChild$") {
		t.Skip("a helper for TestExec")
	}
	mask, err1 := strconv.ParseUint(args[0], 16, 64)
	ignored, err2 := strconv.ParseUint(args[1], 16, 64)
	if err1 != nil || err2 != nil {
		childFail(fmt.Errorf("bad signal state %q %q", args[0], args[1]))
	}
	execFn, path, argv := strings.TrimPrefix(args[2], "fn="), args[3], args[4:]
	fmt.Fprintf(os.Stderr, "followed: %s\n", path)
	v, err := vmm.New(vmm.Config{AllowElsewhere: true, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		childFail(err)
	}
	m, err := NewMachine(vmcode.New(v), &Options{Exec: followExec})
	if err != nil {
		childFail(err)
	}
	p, err := m.LoadProgram(path)
	if err != nil {
		childFail(err)
	}
	p.Inherit(Inherited{Mask: mask, Ignored: ignored, ExecFn: execFn})
	code, err := p.Run(argv, os.Environ())
	if err != nil {
		childFail(err)
	}
	os.Exit(code)
}

// BenchmarkForkWait times one fork of the procs program, whose child
// exits at once, and the parent's wait4: under reachvm (the program's
// forkloop run from its entry point; the child detached to native
// execution) and natively in the same process (the same function of the
// same loaded program called untranslated, RunNative).
func BenchmarkForkWait(b *testing.B) {
	m, p, path, loop := loadFunc(b, "procs", 64<<20, "forkloop")
	b.Run("reachvm", func(b *testing.B) {
		code, err := p.Run([]string{path, "forkloop", strconv.Itoa(b.N)}, nil)
		if err != nil || code != 0 {
			b.Fatalf("status %d, %v", code, err)
		}
	})
	b.Run("native", func(b *testing.B) {
		n, err := m.RunNative(loop, uintptr(b.N))
		if err != nil || n != uintptr(b.N) {
			b.Fatalf("%d of %d forks, %v", n, b.N, err)
		}
	})
}

// libcModes are the modes of the C library's procs program, each
// compared with the native run.
var libcModes = []string{"fork", "vfork", "system", "popen", "spawn", "pipeline", "sigign", "nocldwait"}

// buildLibc builds jit/kernels' C library program name as kind.
func buildLibc(t testing.TB, name, kind string) string {
	t.Helper()
	p, err := kern.Libc(name, kind)
	if errors.Is(err, kern.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLibcProcs runs the C library's ways to start processes (fork,
// vfork, system, popen, posix_spawn, a shell pipeline, SIGCHLD ignored)
// in a static glibc program under reachvm, ET_EXEC and static PIE, and
// natively: the same output and status. Its execve of itself runs the new
// program natively, or under reachvm when followed, with the same output.
func TestLibcProcs(t *testing.T) {
	for _, kind := range programKinds {
		prog := buildLibc(t, "procs", kind.name)
		for _, mode := range libcModes {
			t.Run(kind.name+"/"+mode, func(t *testing.T) {
				want, wantCode := runNative(t, prog, mode)
				got, stderr, code := runProgram(t, prog, kind.name == kern.PIE, mode)
				if code != wantCode || got != want {
					t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
				}
			})
		}
		want, wantCode := runNative(t, prog, "exec", prog)
		for _, follow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/exec/follow=%v", kind.name, follow), func(t *testing.T) {
				var env []string
				if follow {
					env = append(env, "REACHVM_PROGRAM_FOLLOW=1")
				}
				got, stderr, code := runProgramEnv(t, prog, env, programTimeout, "exec", prog)
				if code != wantCode || got != want {
					t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
				}
				if followed := strings.Contains(stderr, "followed: "); followed != follow {
					t.Errorf("followed under reachvm: %v, want %v (stderr %q)", followed, follow, stderr)
				}
			})
		}
	}
}

// TestForkSoak (REACHVM_SOAK=1) forks a few thousand children under
// reachvm, each exiting at once while the parent takes their SIGCHLD:
// every child must exit 0 (a trap flag the dispatcher's stepping left in
// the context once killed one with SIGTRAP).
func TestForkSoak(t *testing.T) {
	if os.Getenv("REACHVM_SOAK") == "" {
		t.Skip("REACHVM_SOAK=1: a few thousand forks")
	}
	prog := buildProgram(t, "procs", kern.Exec)
	for i := range 4 {
		out, stderr, code := runProgram(t, prog, false, "forkloop", "1000")
		if code != 0 {
			t.Fatalf("round %d: status %d, output %q, stderr %q", i, code, out, stderr)
		}
	}
}
