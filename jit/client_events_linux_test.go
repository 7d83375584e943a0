package jit

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	kern "github.com/reachvm/reachvm/jit/kernels"
)

// eventsClient is the client TestProgramChild runs with
// REACHVM_PROGRAM_CLIENT=events: it reports every event kind on w, at
// the program's exit, in an order that does not depend on scheduling,
// answers the first getpid itself (4242) and suppresses SIGUSR2.
func eventsClient(w io.Writer) *Client {
	var mu sync.Mutex
	var lines []string
	var loads, unloads []string
	starts, exits, pre, post, blocks := 0, 0, 0, 0, 0
	var signals []string
	skipped := false
	return &Client{
		Block: func(b *Block) {
			mu.Lock()
			blocks++
			mu.Unlock()
		},
		ModuleLoad: func(mod *Module) {
			name := filepath.Base(mod.Path)
			mu.Lock()
			defer mu.Unlock()
			loads = append(loads, name)
			if name == "libc.so.6" {
				p, ok := mod.Lookup("malloc")
				s, start, sok := mod.Symbol(p)
				lines = append(lines, fmt.Sprintf("libc malloc found %v, in the module %v, named back %v", ok, p >= mod.Base && p < mod.End, sok && start == p && s != ""))
			}
		},
		ModuleUnload: func(mod *Module) {
			mu.Lock()
			defer mu.Unlock()
			unloads = append(unloads, filepath.Base(mod.Path))
		},
		ThreadStart: func(t *Thread) {
			mu.Lock()
			defer mu.Unlock()
			starts++
			t.Data = t.TID
		},
		ThreadExit: func(t *Thread) {
			mu.Lock()
			defer mu.Unlock()
			if t.Data != t.TID {
				lines = append(lines, "thread data lost")
			}
			exits++
		},
		SyscallPre: func(s *Syscall) {
			mu.Lock()
			pre++
			if s.Nr == unix.SYS_GETPID && !skipped {
				// The first: the program's own (raise's
				// tgkill needs the real pid).
				skipped = true
				s.Skip(4242)
			}
			mu.Unlock()
		},
		SyscallPost: func(s *Syscall) {
			mu.Lock()
			post++
			mu.Unlock()
		},
		Signal: func(s *SignalEvent) {
			mu.Lock()
			defer mu.Unlock()
			signals = append(signals, unix.SignalName(s.Info.Signo()))
			if s.Info.Signo() == unix.SIGUSR2 {
				s.Suppress()
			}
		},
		Exit: func(e *ExitEvent) {
			mu.Lock()
			defer mu.Unlock()
			sort.Strings(loads)
			fmt.Fprintf(w, "loads %s\n", strings.Join(loads, " "))
			fmt.Fprintf(w, "unloads %s\n", strings.Join(unloads, " "))
			for _, l := range lines {
				fmt.Fprintln(w, l)
			}
			fmt.Fprintf(w, "threads started %d, exited %d\n", starts, exits)
			fmt.Fprintf(w, "syscalls seen before %v, after fewer %v\n", pre > 20, post < pre && post > 10)
			fmt.Fprintf(w, "blocks %v\n", blocks > 100)
			fmt.Fprintf(w, "signals %s\n", strings.Join(signals, " "))
			fmt.Fprintf(w, "exit %d %v\n", e.Status, e.Err)
		},
	}
}

// TestClientEvents runs a dynamic program that dlopens and dlcloses
// libm, calls getpid, raises two signals and starts two threads, under a client of every
// event kind: each module once (the program, ld.so, libc, libm) before
// its code runs, with its symbols; libm's unload; a thread start and
// exit for each of the three threads, their data kept; the system calls
// before and after, getpid skipped and answered by the client; both
// signals, the second suppressed; the
// program's exit status.
func TestClientEvents(t *testing.T) {
	hasInterp(t)
	prog := buildDynamic(t, "clientev", kern.PIE)
	out, stderr, code := runProgramEnv(t, prog, []string{"REACHVM_PROGRAM_CLIENT=events"}, programTimeout)
	if code != 3 {
		t.Fatalf("status %d, want 3; stdout %q, stderr %q", code, out, stderr)
	}
	if !strings.Contains(out, "handled SIGUSR1\n") || strings.Contains(out, "SIGUSR2") {
		t.Errorf("stdout %q: want SIGUSR1 handled, SIGUSR2 suppressed by the client", out)
	}
	if !strings.Contains(out, "pid 4242\n") || !strings.Contains(out, "cos(0) = 1\n") || !strings.Contains(out, "thread 1: 1999000\n") {
		t.Errorf("stdout %q: want getpid answered 4242 by the client, cos and the threads' sums", out)
	}
	want := []string{
		"loads " + strings.Join(sorted("clientev-dyn-pie", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6"), " "),
		"unloads libm.so.6",
		"libc malloc found true, in the module true, named back true",
		"threads started 3, exited 3",
		"syscalls seen before true, after fewer true",
		"blocks true",
		"signals SIGUSR1 SIGUSR2",
		"exit 3 <nil>",
	}
	for _, w := range want {
		if !strings.Contains(stderr, w+"\n") {
			t.Errorf("the client did not report %q; it reported:\n%s", w, stderr)
		}
	}
}

func sorted(s ...string) []string { sort.Strings(s); return s }

// wrapClient is the client TestProgramChild runs with
// REACHVM_PROGRAM_CLIENT=wrap on the wrapme program: it wraps its add,
// twice, jumper and skipme and reports what the hooks saw at the exit.
func wrapClient(w io.Writer, prog string) *Client {
	var mu sync.Mutex
	var addPre, addPost, jumperPre int
	var twiceSaw uintptr
	var jumperUnwound, skipPost bool
	c := &Client{}
	c.ModuleLoad = func(mod *Module) {
		if mod.Path != prog {
			return
		}
		fn := func(name string) uintptr {
			p, ok := mod.Lookup(name)
			if !ok {
				fmt.Fprintf(w, "no %s in %s\n", name, prog)
			}
			return p
		}
		c.Wrap(fn("add"), func(call *WrapCall) {
			mu.Lock()
			addPre++
			mu.Unlock()
			call.Data = call.Arg(0)
			if call.Arg(0) == 100 {
				call.SetArg(1, 201)
			}
		}, func(call *WrapCall) {
			mu.Lock()
			addPost++
			mu.Unlock()
			if call.Data.(uintptr)+1 != call.ReturnValue() && call.Data.(uintptr) < 10 {
				fmt.Fprintf(w, "add(%d, 1) returned %d\n", call.Data, call.ReturnValue())
			}
		})
		c.Wrap(fn("twice"), nil, func(call *WrapCall) {
			twiceSaw = call.ReturnValue()
			call.SetReturnValue(call.ReturnValue() + 1)
		})
		c.Wrap(fn("jumper"), func(call *WrapCall) { jumperPre++ }, func(call *WrapCall) { jumperUnwound = call.Unwound() })
		c.Wrap(fn("skipme"), func(call *WrapCall) { call.Skip(7) }, func(call *WrapCall) { skipPost = true })
	}
	c.Exit = func(e *ExitEvent) {
		fmt.Fprintf(w, "add pre %d post %d\n", addPre, addPost)
		fmt.Fprintf(w, "twice saw %d\n", twiceSaw)
		fmt.Fprintf(w, "jumper pre %d unwound %v\n", jumperPre, jumperUnwound)
		fmt.Fprintf(w, "skipme post %v\n", skipPost)
	}
	return c
}

// TestWrap wraps functions of a program: the pre hooks see and change
// arguments, the post hooks see and change results, a tail call's
// result reaches the caller's post hook, a longjmp past a wrapped call
// runs its post hook as unwound, and a skipped call returns what the
// pre hook said.
func TestWrap(t *testing.T) {
	hasInterp(t)
	prog := buildDynamic(t, "wrapme", kern.PIE)
	out, stderr, code := runProgramEnv(t, prog, []string{"REACHVM_PROGRAM_CLIENT=wrap"}, programTimeout)
	if code != 0 {
		t.Fatalf("status %d; stdout %q, stderr %q", code, out, stderr)
	}
	if want := "sum 55\ntwice 43\nafter longjmp 301\nskipme 7\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	for _, w := range []string{"add pre 12 post 12", "twice saw 42", "jumper pre 1 unwound true", "skipme post false"} {
		if !strings.Contains(stderr, w+"\n") {
			t.Errorf("the client did not report %q; it reported:\n%s", w, stderr)
		}
	}
}
