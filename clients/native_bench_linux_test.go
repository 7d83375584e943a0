//go:build linux && amd64

package clients

import (
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// BenchmarkNativeClients runs the kernels program's k_fib under no
// client, the Go samples and the C examples, in this process (a fresh
// VMM and machine per run: each run translates its code again, as a
// process's would): the cost of an instrumented run against the
// uninstrumented one. The program's output goes to /dev/null.
func BenchmarkNativeClients(b *testing.B) {
	prog := kernelsProgram(b)
	for _, c := range []struct{ name, client string }{
		{"none", ""},
		{"go-inscount", "inscount"},
		{"c-inscount", example(b, "inscount")},
		{"go-bbcount", "bbcount"},
		{"c-bbcount", example(b, "bbcount")},
		{"c-cleancall", example(b, "cleancall")},
	} {
		b.Run(c.name, func(b *testing.B) {
			defer quiet(b)()
			for range b.N {
				benchRun(b, c.client, prog, "k_fib", "32")
			}
		})
	}
}

// quiet sends descriptor 1 to /dev/null until the function it returns
// is called.
func quiet(b *testing.B) func() {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	saved, err := syscall.Dup(1)
	if err != nil {
		b.Fatal(err)
	}
	if err := syscall.Dup3(int(null.Fd()), 1, 0); err != nil {
		b.Fatal(err)
	}
	return func() {
		syscall.Dup3(saved, 1, 0)
		syscall.Close(saved)
	}
}

// benchRun runs argv under client ("" for none) in a fresh VMM and
// machine, with the client's report discarded.
func benchRun(b *testing.B, client string, argv ...string) {
	benchRunArgs(b, client, nil, argv...)
}

// benchRunArgs is benchRun with the client's arguments args; it returns
// the client's tool, reported and closed, or nil.
func benchRunArgs(b *testing.B, client string, args []string, argv ...string) *Tool {
	v, err := vmm.New(vmm.Config{VMCodeBase: jit.DefaultVMCodeBase, AllowElsewhere: true, VMCodeSize: 256 << 20, VMHeapSize: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	opts := &jit.Options{}
	var tool *Tool
	if client != "" {
		if tool, err = NewIn(v, client, args); err != nil {
			b.Fatal(err)
		}
		defer tool.Close()
		opts.Client = tool.Client
	}
	m, err := jit.NewMachine(vmcode.New(v), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	p, err := m.LoadProgram(argv[0])
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if code, err := p.Run(argv, nil); code != 0 || err != nil {
		b.Fatalf("status %d, %v", code, err)
	}
	if tool != nil {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer null.Close()
		if err := tool.Report(null); err != nil {
			b.Fatal(err)
		}
	}
	return tool
}

func init() {
	// empty-go is the Go twin of testdata/empty.c: a block event that
	// inserts nothing.
	factories["empty-go"] = func(args []string) (*Tool, error) {
		return &Tool{Name: "empty-go", Client: &jit.Client{Block: func(b *jit.Block) {}},
			Report: func(io.Writer) error { return nil }}, nil
	}
}

// BenchmarkNativeTranslate runs /bin/true, whose run is mostly
// translation (ld.so and the C library starting: some 2000 blocks), under
// no client, a Go client and a native client whose block events insert
// nothing: what a native block event costs against a Go one, per block
// translated (the crossing into C, and the block's instructions copied
// out for it).
func BenchmarkNativeTranslate(b *testing.B) {
	for _, c := range []struct{ name, client string }{
		{"none", ""},
		{"go-empty", "empty-go"},
		{"c-empty", testClient(b, "empty")},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				benchRun(b, c.client, "/bin/true")
			}
		})
	}
}
