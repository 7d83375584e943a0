//go:build linux && amd64

package jit

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// loadThreads loads the threads program as loadFunc does, with vmcode
// room for many threads, and returns the address of workloop, which the
// native baselines call untranslated.
func loadThreads(b *testing.B) (*Machine, *Program, string, uintptr) {
	b.Helper()
	return loadFunc(b, "threads", 256<<20, "workloop")
}

// runWork runs the threads program's workloop(b.N, mode) under reachvm
// from its entry point and reports the fragments translated an
// operation; fresh gives every thread a new machine (Program.noIdle).
func runWork(b *testing.B, m *Machine, p *Program, path string, mode int, fresh bool) {
	b.Helper()
	p.noIdle = fresh
	defer func() { p.noIdle = false }()
	before := m.Stats()
	code, err := p.Run([]string{path, "work", strconv.Itoa(b.N), strconv.Itoa(mode)}, nil)
	if err != nil || code != 0 {
		b.Fatalf("status %d, %v", code, err)
	}
	after := m.Stats()
	b.ReportMetric(float64(after.Fragments-before.Fragments)/float64(b.N), "frags/op")
}

// BenchmarkThreadCreate times making a thread that does nothing and
// joining it (clone with CLONE_CHILD_CLEARTID, the join a futex wait on
// the cleared word), under reachvm (a goroutine on an OS thread of its
// own running a machine: the one the thread before left, or with fresh a
// new one, with its context, routines and cache, the thread's code
// translated in it) and natively in the same process (the same function
// of the same loaded program called untranslated, RunNative: a raw
// thread of the test process).
func BenchmarkThreadCreate(b *testing.B) {
	m, p, path, loop := loadThreads(b)
	b.Run("reachvm", func(b *testing.B) { runWork(b, m, p, path, 2, false) })
	b.Run("reachvm-fresh", func(b *testing.B) { runWork(b, m, p, path, 2, true) })
	b.Run("native", func(b *testing.B) {
		if n, err := m.RunNative(loop, uintptr(b.N), 2); err != nil || n != uintptr(b.N) {
			b.Fatalf("%d of %d threads, %v", n, b.N, err)
		}
	})
}

// BenchmarkThreadCode times running the same code (64 functions through
// a table) in the main thread, where it was translated before, and each
// time in a new thread: on the machine the thread before left, which
// translated it already, or (fresh) on a new machine, which translates it
// again. thread-fresh less main less BenchmarkThreadCreate's fresh case
// is what a thread's own cache costs it for code the program already
// ran. Native baselines the same.
func BenchmarkThreadCode(b *testing.B) {
	m, p, path, loop := loadThreads(b)
	for _, c := range []struct {
		name  string
		mode  int
		fresh bool
	}{{"main", 0, false}, {"thread", 1, false}, {"thread-fresh", 1, true}} {
		b.Run("reachvm/"+c.name, func(b *testing.B) { runWork(b, m, p, path, c.mode, c.fresh) })
		if c.fresh {
			continue
		}
		b.Run("native/"+c.name, func(b *testing.B) {
			if n, err := m.RunNative(loop, uintptr(b.N), uintptr(c.mode)); err != nil || n != uintptr(b.N) {
				b.Fatalf("%d of %d, %v", n, b.N, err)
			}
		})
	}
}

// BenchmarkThreadMemory measures what a live thread costs under reachvm:
// an operation runs the threads program with 14 threads waiting on a
// futex, and while all of them live the process's resident memory is
// read (less the same with the program running alone, measured first)
// and the vmcode its machines hold (context, routines and cache units).
func BenchmarkThreadMemory(b *testing.B) {
	const n = 14
	m, p, path, _ := loadThreads(b)
	measure := func(threads int) (rss, code uintptr) {
		done := make(chan error, 1)
		go func() {
			_, err := p.Run([]string{path, "hold", strconv.Itoa(threads), "300"}, nil)
			done <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			p.sig.mu.Lock()
			live := len(p.sig.threads)
			p.sig.mu.Unlock()
			if live == threads+1 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d threads live after 10 s, want %d", live, threads+1)
			}
			time.Sleep(time.Millisecond)
		}
		// The threads have started: give each time to translate its
		// wait and block.
		time.Sleep(50 * time.Millisecond)
		rss = residentBytes(b)
		for _, s := range m.v.Space().Owned() {
			if s.Owner == "jit context" || s.Owner == vmcode.OwnerFcache {
				code += s.Size()
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return rss, code
	}
	rss0, code0 := measure(0)
	b.ResetTimer()
	var rss, code uintptr
	for range b.N {
		r, c := measure(n)
		rss, code = rss+r, code+c
	}
	b.ReportMetric((float64(rss)/float64(b.N)-float64(rss0))/n, "rss-bytes/thread")
	b.ReportMetric((float64(code)/float64(b.N)-float64(code0))/n, "vmcode-bytes/thread")
}

// residentBytes returns the process's resident memory (statm).
func residentBytes(b *testing.B) uintptr {
	s, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(s))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return uintptr(pages) * uintptr(os.Getpagesize())
}

// BenchmarkGate times the gate every system call the dispatcher passes
// to the kernel goes through (getppid, on a machine with nothing
// arrived) against the same call made from Go: the gate's cost is a
// native call (a cgocall's transition) and a compare, which let a signal
// that comes just before a blocking call interrupt it.
func BenchmarkGate(b *testing.B) {
	m, _ := newTestMachine(b, vmm.Config{}, nil)
	ppid := os.Getppid()
	b.Run("gate", func(b *testing.B) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for b.Loop() {
			if m.kernel(unix.SYS_GETPPID, [6]uintptr{}) != uint64(ppid) {
				b.Fatal("getppid through the gate returned another pid")
			}
		}
	})
	b.Run("go-syscall", func(b *testing.B) {
		for b.Loop() {
			if r, _, _ := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0); int(r) != ppid {
				b.Fatal("getppid returned another pid")
			}
		}
	})
}
