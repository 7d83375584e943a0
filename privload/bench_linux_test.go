//go:build linux

package privload

import (
	"os"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/vmm"
)

// The loader's benchmarks, each against the host's dynamic linker in the
// same process (docs/ARCHITECTURE.md section 7): privload's Load + relocate + init +
// Close against dlopen(RTLD_NOW) + dlclose of the same file, and lookups
// against dlsym.

const zlibPath = sysLibDir + "libz.so.1"

func benchLoad(b *testing.B, path string) {
	run := func(name string, wx vmm.WXMode, cold bool) {
		b.Run(name, func(b *testing.B) {
			v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, WX: wx})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			cacheOff = cold
			defer func() { cacheOff = false }()
			for b.Loop() {
				lib, err := Load(v, path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				if err := lib.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The configuration reachvm runs with: W^X vmcode, parse cache.
	run("privload", vmm.WXAuto, false)
	// Every load parses (no parse cache).
	run("privload-cold", vmm.WXAuto, true)
	// vmcode without W^X: one anonymous reservation, no alias view.
	run("privload-nowx", vmm.WXOff, false)
	b.Run("dlopen", func(b *testing.B) {
		for b.Loop() {
			h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
			if err != nil {
				b.Fatal(err)
			}
			if err := purego.Dlclose(h); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLoad loads and closes the demo library.
func BenchmarkLoad(b *testing.B) {
	benchLoad(b, writeTemp(b, demolib.Name, demolib.SO))
}

// BenchmarkLoadZlib loads and closes the system's libz: 121 KiB, four
// segments, 80 relocations, 35 imports bound to the host's libc, an
// initialiser and a finaliser. dlclose unmaps it too: libz is not
// otherwise loaded in the test process.
func BenchmarkLoadZlib(b *testing.B) {
	if _, err := os.Stat(zlibPath); err != nil {
		b.Skip(err)
	}
	benchLoad(b, zlibPath)
}

// BenchmarkSymbol looks up each of libz's exports in turn, and a name it
// does not have: privload's Library.Lookup (GNU hash in Go) against the
// host's dlsym on the same library loaded by the host (called directly,
// and through purego.Dlsym, which also converts the name).
func BenchmarkSymbol(b *testing.B) {
	if _, err := os.Stat(zlibPath); err != nil {
		b.Skip(err)
	}
	v := newVMM(b)
	lib, err := Load(v, zlibPath, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer lib.Close()
	var names []string
	var cnames [][]byte
	for _, s := range lib.File().Symbols() {
		if exported(s) && s.Type != 6 {
			names = append(names, s.Name)
			cnames = append(cnames, append([]byte(s.Name), 0))
		}
	}
	h, err := purego.Dlopen(zlibPath, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		b.Fatal(err)
	}
	defer purego.Dlclose(h)
	if err := dlFuncs(); err != nil {
		b.Fatal(err)
	}
	dlsym := FuncAt(dlsymFn, "dlsym")
	miss := []byte("reachvm_no_such_symbol\x00")
	b.Run("privload/hit", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, ok := lib.Lookup(names[i%len(names)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("privload/miss", func(b *testing.B) {
		for b.Loop() {
			lib.Lookup("reachvm_no_such_symbol")
		}
	})
	b.Run("dlsym/hit", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if ok(dlsym.Call(h, uintptr(unsafe.Pointer(&cnames[i%len(cnames)][0])))) == 0 {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("dlsym/miss", func(b *testing.B) {
		for b.Loop() {
			ok(dlsym.Call(h, uintptr(unsafe.Pointer(&miss[0]))))
		}
	})
	b.Run("purego.Dlsym/hit", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := purego.Dlsym(h, names[i%len(names)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkCall measures the ways into a function of a loaded library:
// Func.Call1 (integers, internal/native's trampoline through
// runtime.cgocall), the variadic Func.Call, the same call through
// purego.SyscallN, Bind1 (the typed binding), Func.Invoke with integer and
// float arguments, and a Go function bound by Func.Bind
// (purego.RegisterFunc). The callee returns at once, so each figure is
// the cost of the transition. BenchmarkCallVsCgo compares them with cgo.
func BenchmarkCall(b *testing.B) {
	path := fxPath(b, "libfx_host.so")
	v := newVMM(b)
	lib, err := Load(v, path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer lib.Close()
	nop, err := lib.Func("fx_nop")
	if err != nil {
		b.Fatal(err)
	}
	mix, err := lib.Func("fx_mix")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("int/Func.Call1", func(b *testing.B) {
		for b.Loop() {
			ok(nop.Call1(7))
		}
	})
	b.Run("int/Func.Call", func(b *testing.B) {
		for b.Loop() {
			ok(nop.Call(7))
		}
	})
	typed := Bind1[int64, int64](nop)
	b.Run("int/Bind1", func(b *testing.B) {
		for b.Loop() {
			ok(typed(7))
		}
	})
	b.Run("int/purego.SyscallN", func(b *testing.B) {
		for b.Loop() {
			purego.SyscallN(nop.Addr(), 7)
		}
	})
	b.Run("int/Func.Invoke", func(b *testing.B) {
		for b.Loop() {
			ok(nop.Invoke(Int(7)))
		}
	})
	var nopFn func(int64) int64
	if err := nop.Bind(&nopFn); err != nil {
		b.Fatal(err)
	}
	b.Run("int/Func.Bind", func(b *testing.B) {
		for b.Loop() {
			nopFn(7)
		}
	})
	b.Run("mixed/Func.Invoke", func(b *testing.B) {
		for b.Loop() {
			ok(mix.Invoke(Int(3), Float64(1.5), Int(-4), Float32(0.25), Int(10)))
		}
	})
	var mixFn func(int64, float64, int32, float32, int64) float64
	if err := mix.Bind(&mixFn); err != nil {
		b.Fatal(err)
	}
	b.Run("mixed/Func.Bind", func(b *testing.B) {
		for b.Loop() {
			mixFn(3, 1.5, -4, 0.25, 10)
		}
	})
}
