//go:build linux && amd64

package jit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/vmm"
)

// status is how a child process ended: its exit code, or the signal
// that killed it.
type status struct {
	code int
	sig  syscall.Signal
}

func (s status) String() string {
	if s.sig != 0 {
		return "killed by " + s.sig.String()
	}
	return fmt.Sprintf("exit %d", s.code)
}

// runCmd runs cmd in a process group of its own (kill(0, ...) then
// reaches nothing else) and returns its output and how it ended.
func runCmd(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, st status) {
	t.Helper()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			st.sig = ws.Signal()
		} else {
			st.code = ws.ExitStatus()
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), st
}

// nativeCmd runs path natively.
func nativeCmd(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"RV=yes", "HOME=/"}
	return cmd
}

// reachvmCmd runs path under reachvm in a child process
// (TestProgramChild), which dies of the signal that ends the program.
func reachvmCmd(path string, low bool, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestProgramChild$")
	cmd.Env = append(os.Environ(), "REACHVM_PROGRAM="+path, "REACHVM_PROGRAM_ARGS="+strings.Join(args, "\x1f"), "REACHVM_PROGRAM_DIE=1")
	if low {
		cmd.Env = append(cmd.Env, "REACHVM_PROGRAM_LOW=1")
	}
	return cmd
}

// matchNative runs ref natively with args and cmd (the same program
// under reachvm, from reachvmCmd, with the same args), and fails t unless
// both print the same standard output and end the same way. It returns
// the native output, and the standard error and end of the run under
// reachvm, for the caller's own checks.
func matchNative(t *testing.T, ref string, args []string, cmd *exec.Cmd) (want, stderr string, st status) {
	t.Helper()
	want, _, wantSt := runCmd(t, nativeCmd(ref, args...))
	got, stderr, st := runCmd(t, cmd)
	if st != wantSt || got != want {
		t.Errorf("under reachvm: %v, output:\n%s\nstderr: %s\nnatively: %v, output:\n%s", st, got, stderr, wantSt, want)
	}
	return want, stderr, st
}

// matchNativeCases runs each case of args of program natively (ET_EXEC)
// and under reachvm as each of programKinds with matchNative, in subtests
// named KIND/ARG_ARG.
func matchNativeCases(t *testing.T, program string, cases [][]string) {
	ref := buildProgram(t, program, kern.Exec)
	for _, kind := range programKinds {
		prog := buildProgram(t, program, kind.name)
		for _, args := range cases {
			t.Run(kind.name+"/"+strings.Join(args, "_"), func(t *testing.T) {
				matchNative(t, ref, args, reachvmCmd(prog, kind.name == kern.PIE, args...))
			})
		}
	}
}

// TestSignalPrograms runs sig_basic's cases natively (ET_EXEC) and under
// reachvm (ET_EXEC and static PIE): the same output, line for line (the
// frame's layout relative to the handler's stack pointer, its sigcontext
// and XSAVE fields, the order of nested deliveries, the kernel's
// errors), and the same end, an exit code or the signal that killed the
// process. restart, norestart and waits take a real timer's SIGALRM: a
// blocking read it interrupts restarts or fails with EINTR as SA_RESTART
// says, and rt_sigsuspend, pause, nanosleep and rt_sigtimedwait end.
func TestSignalPrograms(t *testing.T) {
	cases := [][]string{
		{"info"}, {"plain"}, {"default"}, {"default", "3"}, {"default", "1"}, {"default", "17"}, {"default", "9"},
		{"ignore"}, {"block"}, {"resethand"}, {"nodefer"}, {"edit"}, {"longjmp"},
		{"altstack"}, {"altedit"}, {"altoverflow"}, {"badstack"}, {"norestorer"}, {"suspend"}, {"timedwait"},
		{"order"}, {"errors"}, {"restart"}, {"norestart"}, {"waits"},
	}
	matchNativeCases(t, "sig_basic", cases)
}

// TestSignalRegisters runs sig_regs natively and under reachvm: a handler
// that clobbers every general and vector register, the flags, MXCSR and
// the x87 control word, and rt_sigreturn restores them all (the upper
// halves of ymm and zmm and the opmask registers where the processor has
// them); the handler starts with DF clear and a clean vector state; a
// handler that nulls or edits the frame's fpstate gets the state reset or
// edited, or SIGSEGV for an area XRSTOR refuses.
func TestSignalRegisters(t *testing.T) {
	ref := buildProgram(t, "sig_regs", "exec")
	for _, kind := range programKinds {
		prog := buildProgram(t, "sig_regs", kind.name)
		for _, c := range []string{"sse", "avx", "avx512", "fpnull", "fpedit", "badmxcsr", "badheader", "fxonly"} {
			t.Run(kind.name+"/"+c, func(t *testing.T) {
				want, _, _ := matchNative(t, ref, []string{c}, reachvmCmd(prog, kind.name == kern.PIE, c))
				if strings.Contains(want, "CHANGED") {
					t.Errorf("natively, a register the handler clobbered was not restored:\n%s", want)
				}
			})
		}
	}
}

// TestSignalFaults runs sig_fault natively and under reachvm, where the
// signal layer takes ud2's and int3's real faults to Program.fault:
// handlers see the kernel's siginfo and sigcontext (si_code, si_addr,
// rip, trapno) and go on past the instruction; a fault blocked, ignored
// or left at its default kills the process with the signal, and reachvm
// says where.
func TestSignalFaults(t *testing.T) {
	ref := buildProgram(t, "sig_fault", "exec")
	for _, kind := range programKinds {
		prog := buildProgram(t, "sig_fault", kind.name)
		for _, c := range []string{"handled", "blocked", "ignored", "default"} {
			t.Run(kind.name+"/"+c, func(t *testing.T) {
				_, stderr, st := matchNative(t, ref, []string{c}, reachvmCmd(prog, kind.name == kern.PIE, c))
				if st.sig != 0 && !strings.Contains(stderr, "killed by SIGILL at sig_fault-"+kind.name+"+0x") {
					t.Errorf("stderr %q does not say where the program was killed", stderr)
				}
			})
		}
	}
}

// TestSignalRestart checks the restart of a system call the kernel
// performed for the application and that failed with EINTR while a
// signal was pending for it (the signal layer's real signal
// interrupts it): with SA_RESTART, a call signal(7) lists as restarted
// goes back to its syscall instruction with its number in rax, saved so
// in the handler's frame; without SA_RESTART, or for a call never
// restarted after a handler (nanosleep, a socket with a timeout), the
// frame holds EINTR and the next instruction; when no handler runs, the
// call restarts. A real signal is not needed: the test sets up the state
// the dispatcher has after such a call (TestSignalPrograms' restart and
// norestart cases take a real one, for read).
func TestSignalRestart(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{}, nil)
	prog := buildProgram(t, "sig_basic", "pie")
	p, err := m.LoadProgram(prog)
	if err != nil {
		t.Fatal(err)
	}
	var sv [2]int
	if sv, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sv[0])
	defer unix.Close(sv[1])
	if err := unix.SetsockoptTimeval(sv[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		t.Fatal(err)
	}
	const (
		pc       = 0x12340000 // the syscall instruction
		handler  = 0x45670000
		restorer = 0x45671000
	)
	eintr := errno(unix.EINTR)
	for _, c := range []struct {
		name      string
		nr        uint64
		fd        int
		flags     uint64
		noHandler bool
		// rip and rax are what the application goes on with after the
		// handler returns (the frame's), or at once without one.
		rip uintptr
		rax uint64
	}{
		{"read SA_RESTART", unix.SYS_READ, sv[0], saRestart, false, pc, unix.SYS_READ},
		{"read", unix.SYS_READ, sv[0], 0, false, pc + 2, eintr},
		{"read timeout SA_RESTART", unix.SYS_READ, sv[1], saRestart, false, pc + 2, eintr},
		{"wait4 SA_RESTART", unix.SYS_WAIT4, -1, saRestart, false, pc, unix.SYS_WAIT4},
		{"nanosleep SA_RESTART", unix.SYS_NANOSLEEP, 0, saRestart, false, pc + 2, eintr},
		{"epoll_wait SA_RESTART", unix.SYS_EPOLL_WAIT, 0, saRestart, false, pc + 2, eintr},
		{"read no handler", unix.SYS_READ, sv[0], 0, true, pc, unix.SYS_READ},
		{"poll no handler", unix.SYS_POLL, 0, 0, true, pc, unix.SYS_POLL},
		{"epoll_pwait2 SA_RESTART", unix.SYS_EPOLL_PWAIT2, 0, saRestart, false, pc + 2, eintr},
		{"getpid no handler", unix.SYS_GETPID, 0, 0, true, pc + 2, eintr},
	} {
		t.Run(c.name, func(t *testing.T) {
			m.mu.Lock()
			defer m.mu.Unlock()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			th, err := p.start([]string{prog}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.stop()
			sp := m.reg(amd64.RSP)
			p.sig.actions[unix.SIGUSR1-1] = sigAction{handler: handler, flags: c.flags | saRestorer, restorer: restorer}
			info := newSigInfo(unix.SIGUSR1, siTkill)
			th.post(&info)
			if !th.sigPending() {
				t.Fatal("a posted signal does not set the dispatcher's flag")
			}
			if c.noHandler {
				// The disposition changed after the signal was
				// queued: nothing runs for it.
				p.sig.actions[unix.SIGUSR1-1].handler = sigDFL
				p.sig.actions[unix.SIGUSR1-1].flags = 0
				p.sig.actions[unix.SIGCHLD-1] = sigAction{}
				th.sig.pending.flush(^uint64(0))
				chld := newSigInfo(unix.SIGCHLD, siUser)
				p.sig.mu.Lock()
				th.sig.pending.add(&sigEntry{info: chld})
				th.recalcLocked()
				p.sig.mu.Unlock()
			}
			a := [6]uintptr{uintptr(c.fd)}
			th.interrupted(c.nr, a, pc)
			next, err := th.deliverPending(m.sysret(pc, eintr))
			if err != nil {
				t.Fatal(err)
			}
			if c.noHandler {
				if next != c.rip || m.reg(amd64.RAX) != c.rax || m.reg(amd64.RSP) != sp {
					t.Errorf("goes on at %#x with rax %#x, rsp moved %d: want %#x, rax %#x, no frame", next, m.reg(amd64.RAX), int64(m.reg(amd64.RSP)-sp), c.rip, c.rax)
				}
				return
			}
			if next != handler {
				t.Fatalf("goes on at %#x, want the handler %#x", next, handler)
			}
			var sc [scCopy]byte
			if !copyIn(uintptr(m.reg(amd64.RDX))+ucMContext, sc[:]) {
				t.Fatal("cannot read the frame")
			}
			rip, rax := uintptr(binary.LittleEndian.Uint64(sc[scRIP:])), binary.LittleEndian.Uint64(sc[8*13:])
			if rip != c.rip || rax != c.rax {
				t.Errorf("the frame resumes at %#x with rax %#x, want %#x with rax %#x", rip, rax, c.rip, c.rax)
			}
			if th.sigPending() {
				t.Error("the dispatcher's flag is still set after the delivery")
			}
		})
	}
	// Outside a run, nothing is queued.
	info := newSigInfo(unix.SIGUSR1, siUser)
	th := &thread{p: p, m: m}
	th.post(&info)
	if p.sig.shared.set != 0 || th.sigPending() {
		t.Error("a signal posted outside Run was queued")
	}
}

// TestSignalStop: SIGTSTP with its default action stops the process,
// under reachvm as natively (the parent sees it stopped by SIGTSTP), and
// it goes on when continued.
func TestSignalStop(t *testing.T) {
	ref := buildProgram(t, "sig_basic", "exec")
	for _, mode := range []string{"native", "reachvm"} {
		t.Run(mode, func(t *testing.T) {
			cmd := nativeCmd(ref, "default", "20")
			if mode == "reachvm" {
				cmd = reachvmCmd(ref, false, "default", "20")
			}
			// A file, not a pipe: the process is waited for directly.
			out, err := os.CreateTemp(t.TempDir(), "out")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			cmd.Stdout, cmd.Stderr = out, out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := cmd.Process.Pid
			defer syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(pid, &ws, syscall.WUNTRACED, nil); err != nil {
				t.Fatal(err)
			}
			if !ws.Stopped() || ws.StopSignal() != syscall.SIGTSTP {
				t.Fatalf("wait status %#x: want stopped by SIGTSTP", uint32(ws))
			}
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(out.Name())
			if !ws.Exited() || ws.ExitStatus() != 0 || string(b) != "before\nafter\n" {
				t.Errorf("after SIGCONT: wait status %#x, output %q: want exit 0, before and after", uint32(ws), b)
			}
		})
	}
}

// TestSignalGroup: kill(0, sig) and kill(-pgrp, sig) reach the program
// (its handler runs) and the other members of its process group (a
// sleep, which SIGHUP kills), under reachvm as natively.
func TestSignalGroup(t *testing.T) {
	ref := buildProgram(t, "sig_basic", "exec")
	for _, mode := range []string{"native", "reachvm"} {
		t.Run(mode, func(t *testing.T) {
			sleeper := exec.Command("sleep", "30")
			sleeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := sleeper.Start(); err != nil {
				t.Skip(err)
			}
			defer sleeper.Process.Kill()
			cmd := nativeCmd(ref, "plain")
			if mode == "reachvm" {
				cmd = reachvmCmd(ref, false, "plain")
			}
			var out strings.Builder
			cmd.Stdout = &out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: sleeper.Process.Pid}
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 || out.String() != "plain handler 1\nplain handler 1\nplain handler 1\ngot 3\n" {
				t.Errorf("the program: %v, output %q: want exit 3, three handler runs", err, out.String())
			}
			err = sleeper.Wait()
			if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGHUP {
				t.Errorf("the other member of the group: %v, want killed by SIGHUP", err)
			}
		})
	}
}

// TestSignalTimerHandler: a POSIX timer's SIGALRM, every 2 ms, into a
// busy loop without system calls, under reachvm with vmcode high (where
// the loop's RIP-relative load goes through inserted code, so signals
// often come there and the dispatcher single-steps to an exact point):
// the signal layer takes each real signal, the emulation delivers it to
// the program's handler (which makes system calls, blocked signals
// meanwhile), and the program sees every expiry. A signal that comes
// while a step's trap is on its way out of the cache must not turn that
// trap into a SIGTRAP for the program.
func TestSignalTimerHandler(t *testing.T) {
	prog := buildProgram(t, "sig_bench", "exec")
	// The race is rare and timing-dependent (seen in up to one run in
	// ten of 100 expiries under load, in none of 40 runs on a quiet
	// machine): this catches it only sometimes.
	runs := 5
	if testing.Short() {
		runs = 2
	}
	for i := range runs {
		out, stderr, st := runCmd(t, reachvmCmd(prog, false, "delay", "100"))
		if st != (status{}) || !strings.HasPrefix(out, "delay_ns_mean ") {
			t.Fatalf("run %d: %v, output %q, stderr %q: want the 100 expiries handled", i, st, out, stderr)
		}
	}
}

// TestSignalStorm runs sig_storm, a 20 us interval timer over a loop of
// pure computation, natively and then several times under reachvm: the
// same output and exit every time. Its signals come about as fast as the
// signal layer delivers them, so one often arrives in the context switch
// as it enters the cache (the handler then single-steps the thread into
// translated code, and redirects the step's trap to sigexit) and another
// in sigexit while that trap is on its way to the dispatcher (the
// handler steps sigexit out into Go, which clears the state's stepping
// bit). The trap is still reachvm's step and must not become a SIGTRAP
// for the program: before the handler marked it so as it redirected it,
// 8 to 20 runs in 20 died of it here (3 in 10 with a 50 us timer).
func TestSignalStorm(t *testing.T) {
	prog := buildProgram(t, "sig_storm", kern.Exec)
	args := []string{"2000000", "20"}
	runs := 5
	if testing.Short() {
		runs = 2
	}
	if raceEnabled {
		// The detector's slower dispatcher falls behind a 20 us
		// timer: a run could take minutes.
		args[1], runs = "50", 2
	}
	want, _, wantSt := runCmd(t, nativeCmd(prog, args...))
	const limit = 60 * time.Second
	signals := 0
	for i := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		c := reachvmCmd(prog, false, args...)
		cmd := exec.CommandContext(ctx, c.Path, c.Args[1:]...)
		cmd.Env = append(c.Env, "REACHVM_PROGRAM_STATS=1")
		got, stderr, st := runCmd(t, cmd)
		late := ctx.Err() != nil
		cancel()
		if late {
			t.Fatalf("run %d under reachvm: still running after %v", i, limit)
		}
		if st != wantSt || got != want {
			t.Fatalf("run %d under reachvm: %v, output %q, stderr %q; natively: %v, output %q", i, st, got, stderr, wantSt, want)
		}
		signals += statField(t, stderr, "Signals")
	}
	if signals == 0 {
		t.Errorf("no signal taken out of the code cache in %d runs: the storm did not reach the cache", runs)
	}
}

// FuzzSigreturnVectorState gives rt_sigreturn's vector-state restore
// frames the application could have edited and runs the application on
// whatever it accepts: a state that passed the checks but that XRSTOR (or
// FXRSTOR) refused would fault inside reachvm's own context switch, which
// must never happen for any bytes the application can put there. The
// input is XORed over the frame the kernel would write for the initial
// state, from its start (the legacy area, the software bytes, the XSAVE
// header and the first components: what the checks read), and its last
// 4 bytes over MAGIC2, so that inputs stay small.
func FuzzSigreturnVectorState(f *testing.F) {
	m, code := newTestMachine(f, vmm.Config{}, nil)
	ret := appCode(f, code, "c3")
	x := xstateFrameOf(m.vs)
	frame := make([]byte, x.size+128)
	at := (64 - uintptr(unsafe.Pointer(&frame[0]))%64) % 64
	fp := uintptr(unsafe.Pointer(&frame[at]))
	area := make([]byte, m.lay.xsaveSize)
	resetVectorState(area)
	userAccess(func() { x.save(fp, area) })
	good := append([]byte(nil), frame[at:at+x.size]...)
	const head = 1024
	f.Add([]byte{}, uint32(0))
	for _, off := range []int{24, 25, fpxSW, fpxSW + 16, xsaveHeader, xsaveHeader + 8, xsaveHeader + 15} {
		b := make([]byte, off+1)
		b[off] = 0x5a
		f.Add(b, uint32(0))
	}
	f.Add([]byte{}, uint32(0xffffffff))
	f.Fuzz(func(t *testing.T, edit []byte, magic2 uint32) {
		if len(edit) > head {
			edit = edit[:head]
		}
		img := frame[at : at+uintptr(len(good))]
		copy(img, good)
		for i, b := range edit {
			img[i] ^= b
		}
		end := len(img) - 4
		binary.LittleEndian.PutUint32(img[end:], binary.LittleEndian.Uint32(img[end:])^magic2)
		m.mu.Lock()
		defer m.mu.Unlock()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		m.prepare(m.sentinel, nil)
		var accepted bool
		ok := userAccess(func() { accepted = x.restore(fp, m.mem[ctxXsave:ctxXsave+m.lay.xsaveSize]) })
		if !ok || !accepted {
			return
		}
		done, err := m.runningOn(0)
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		if _, err := m.dispatch(ret); err != nil {
			t.Fatalf("a vector state rt_sigreturn accepted did not run: %v", err)
		}
	})
}
