package jit_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// runUnder runs argv (argv[0] a path) under the translator with client,
// as reachvm run does, and returns its exit status.
func runUnder(client *jit.Client, argv ...string) int {
	v, m := newMachine(client)
	defer v.Close()
	defer m.Close()
	p, err := m.LoadProgram(argv[0])
	if err != nil {
		panic(err)
	}
	defer p.Close()
	status, err := p.Run(argv, []string{"PATH=/usr/bin:/bin"})
	if err != nil {
		panic(err)
	}
	return status
}

func newMachine(client *jit.Client) (*vmm.VMM, *jit.Machine) {
	v, err := vmm.New(vmm.Config{AllowElsewhere: true, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		panic(err)
	}
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{Client: client})
	if err != nil {
		panic(err)
	}
	return v, m
}

// ExampleClient counts the instructions a program executes: a counter
// per thread, added to at each basic block's first instruction by the
// block's length (inscount).
func ExampleClient() {
	instrs := jit.NewCounter(jit.PerThread)
	status := runUnder(&jit.Client{
		Block: func(b *jit.Block) { b.AddCounter(0, instrs, int64(b.Len())) },
		Exit: func(e *jit.ExitEvent) {
			fmt.Println("exit status", e.Status, "error", e.Err)
		},
	}, "/bin/true")
	fmt.Println("status", status, "instructions > 10000:", instrs.Value() > 10000)
	// Output:
	// exit status 0 error <nil>
	// status 0 instructions > 10000: true
}

// ExampleClient_syscalls watches the system calls of a program: a shell's
// write is skipped (the client answers that it wrote everything), the
// others are made and their results seen.
func ExampleClient_syscalls() {
	made := 0
	runUnder(&jit.Client{
		SyscallPre: func(s *jit.Syscall) {
			if s.Nr == unix.SYS_WRITE {
				fmt.Printf("write(%d, %d bytes) skipped\n", s.Args[0], s.Args[2])
				s.Skip(uint64(s.Args[2]))
			}
		},
		SyscallPost: func(s *jit.Syscall) { made++ },
	}, "/bin/sh", "-c", "echo hello")
	fmt.Println("calls made:", made > 5)
	// Output:
	// write(1, 6 bytes) skipped
	// calls made: true
}

// ExampleClient_threads keeps per-thread data and per-thread counts:
// each thread's own blocks executed, read at its exit.
func ExampleClient_threads() {
	blocks := jit.NewCounter(jit.PerThread)
	runUnder(&jit.Client{
		Block:       func(b *jit.Block) { b.AddCounter(0, blocks, 1) },
		ThreadStart: func(t *jit.Thread) { t.Data = "main" },
		ThreadExit: func(t *jit.Thread) {
			fmt.Println(t.Data, "thread ran blocks:", t.Value(blocks) > 1000)
		},
	}, "/bin/true")
	// Output: main thread ran blocks: true
}

// ExampleModule lists the modules of a dynamic program as the
// translator meets them, and finds a function in the C library.
func ExampleModule() {
	var names []string
	found := false
	runUnder(&jit.Client{
		ModuleLoad: func(mod *jit.Module) {
			names = append(names, filepath.Base(mod.Path))
			if strings.HasPrefix(filepath.Base(mod.Path), "libc.so") {
				_, found = mod.Lookup("malloc")
			}
		},
	}, "/bin/true")
	slices.Sort(names)
	fmt.Println(strings.Join(names, " "))
	fmt.Println("malloc found:", found)
	// Output:
	// ld-linux-x86-64.so.2 libc.so.6 true
	// malloc found: true
}

// ExampleSignalEvent suppresses a signal a shell sends itself: instead
// of dying of SIGTERM, it goes on to exit 7.
func ExampleSignalEvent() {
	status := runUnder(&jit.Client{
		Signal: func(s *jit.SignalEvent) {
			if s.Info.Signo() == unix.SIGTERM {
				fmt.Println("suppressed", unix.SignalName(s.Info.Signo()))
				s.Suppress()
			}
		},
	}, "/bin/sh", "-c", "kill -TERM $$; exit 7")
	fmt.Println("status", status)
	// Output:
	// suppressed SIGTERM
	// status 7
}

// ExampleBlock_CleanCall calls a native function in vmcode before each
// basic block: a rel32 call from the code cache, the application's
// state kept around it. The function, emitted here, adds 1 to a cell
// beside it; a counter added to at the same place agrees.
func ExampleBlock_CleanCall() {
	var fn, cell uintptr
	blocks := jit.NewCounter(jit.PerThread)
	client := &jit.Client{Block: func(b *jit.Block) {
		b.CleanCall(0, fn, jit.ArgPC())
		b.AddCounter(0, blocks, 1)
	}}
	v, m := newMachine(client)
	defer v.Close()
	defer m.Close()
	// The function and its cell, in vmcode.
	var release func()
	cell, release = vmcodeCell(v)
	defer release()
	u, err := vmcode.New(v).Alloc(64)
	if err != nil {
		panic(err)
	}
	defer u.Free()
	a := amd64.NewAssembler(u.Exec())
	if err := a.LockAddMemImm(amd64.RIPRel(cell), 1); err != nil {
		panic(err)
	}
	a.Ret()
	u.Write(0, a.Bytes())
	u.Seal()
	fn = u.Exec()

	p, err := m.LoadProgram("/bin/true")
	if err != nil {
		panic(err)
	}
	defer p.Close()
	if _, err := p.Run([]string{"/bin/true"}, nil); err != nil {
		panic(err)
	}
	calls := atomic.LoadUint64((*uint64)(rawmem.Ptr(cell)))
	fmt.Println("calls = blocks executed:", calls == blocks.Value() && calls > 0)
	// Output: calls = blocks executed: true
}

// ExampleTraceBuffer records the address of every explicit memory
// operand a program uses into per-thread buffers that Go reads a buffer
// at a time.
func ExampleTraceBuffer() {
	var records, flushes int
	buf := jit.NewTraceBuffer(func(t *jit.Thread, recs []jit.TraceRecord) {
		records += len(recs)
		flushes++
	})
	runUnder(&jit.Client{Block: func(b *jit.Block) {
		for i := range b.Len() {
			if b.Instr(i).HasMemOperand() {
				b.RecordEA(i, buf, uint32(i))
			}
		}
	}}, "/bin/true")
	fmt.Println("records > 10000:", records > 10000, "flushes > 1:", flushes > 1)
	// Output: records > 10000: true flushes > 1: true
}

// ExampleBlock_InsertMeta counts blocks with meta instructions of the
// client's own: two registers reserved (dead ones where there are, else
// spilled to the thread's context), a load, a lea and a store to a cell
// in vmcode, and the flags left alone.
func ExampleBlock_InsertMeta() {
	var cell uintptr
	blocks := jit.NewCounter(jit.PerThread)
	client := &jit.Client{Block: func(b *jit.Block) {
		b.InsertMeta(0, func(m *jit.Meta) {
			p, v := m.ReserveReg(), m.ReserveReg()
			m.MovImm(p, uint64(cell))
			m.Load(v, p, 0)
			m.AddImm(v, 1)
			m.Store(p, 0, v)
		})
		b.AddCounter(0, blocks, 1)
	}}
	v, m := newMachine(client)
	defer v.Close()
	defer m.Close()
	var release func()
	cell, release = vmcodeCell(v)
	defer release()
	p, err := m.LoadProgram("/bin/true")
	if err != nil {
		panic(err)
	}
	defer p.Close()
	if _, err := p.Run([]string{"/bin/true"}, nil); err != nil {
		panic(err)
	}
	n := atomic.LoadUint64((*uint64)(rawmem.Ptr(cell)))
	fmt.Println("counted = blocks executed:", n == blocks.Value() && n > 0)
	// Output: counted = blocks executed: true
}

// vmcodeCell returns an 8-byte read-write cell in vmcode, within rel32
// reach of the code cache, and what releases it.
func vmcodeCell(v *vmm.VMM) (uintptr, func()) {
	s, err := v.ReserveSlot(64<<10, "example client")
	if err != nil {
		panic(err)
	}
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRW); err != nil {
		s.Release()
		panic(err)
	}
	return s.Base(), func() { s.Release() }
}
