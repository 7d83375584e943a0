// Package demolib is the client library of privload's walking skeleton: a
// small shared object, written in C with no libc dependency, whose one
// entry point exercises each kind of work a loader does (relocations of
// every common kind, .bss, an initialiser and a finaliser).
//
// A prebuilt copy is embedded (SO) so that `go run` and `go test` need no
// C compiler; build.sh (run by `go generate`) rebuilds it from c/libdemo.c,
// and the package's test checks that a fresh build still matches.
//
// demo.dll (DLL) is its Windows twin, built by build.sh with mingw-w64
// from c/demo.c: the same exports computing the same results (Expected),
// with base relocations, .bss and DllMain as initialiser and finaliser.
package demolib

import _ "embed"

//go:generate sh build.sh

// Name is the library's file name and DT_SONAME.
const Name = "libdemo.so"

// SO is the prebuilt libdemo.so, built by build.sh from c/libdemo.c.
//
//go:embed libdemo.so
var SO []byte

// DLLName is the Windows library's file name and export-directory name.
const DLLName = "demo.dll"

// DLL is the prebuilt demo.dll, built by build.sh from c/demo.c: a PE32+
// x86-64 DLL with no imports, loadable by privload on Windows.
//
//go:embed demo.dll
var DLL []byte

// The library's exported symbols, for lookups.
const (
	// Compute is `long demo_compute(long a, long b)`: see Expected.
	Compute = "demo_compute"
	// Helper is `long demo_helper(long x)`, returning 3x+1; Compute calls
	// it through the PLT (R_X86_64_JUMP_SLOT) and through a pointer in
	// data (R_X86_64_64).
	Helper = "demo_helper"
	// Calls is `long demo_calls(void)`, returning how many times Compute
	// ran since the library was loaded (a .bss counter).
	Calls = "demo_calls"
	// Scale is `long demo_scale`, an exported variable initialised to
	// InitialScale; Compute reads it through the GOT (R_X86_64_GLOB_DAT).
	Scale = "demo_scale"
	// FiniHook is `long *demo_fini_hook`, NULL at load. If the host
	// stores an address there, the library's destructor (DT_FINI_ARRAY)
	// writes the value of Calls to it, so a test can see finalisers run.
	FiniHook = "demo_fini_hook"
)

// InitialScale is demo_scale's initial value.
const InitialScale = 7

// InitSeed is the value the library's constructor (DT_INIT_ARRAY) stores
// in a static variable that Compute adds in: a result without it means the
// initialisers did not run.
const InitSeed = 1000

// Table is the library's read-only table, reached through a pointer that
// needs an R_X86_64_RELATIVE relocation.
var Table = [8]int64{3, 1, 4, 1, 5, 9, 2, 6}

// Expected returns what demo_compute(a, b) returns in a correctly loaded
// library whose demo_scale is InitialScale, computed independently in Go
// (with the same wrapping arithmetic):
//
//	demo_helper(a) + demo_helper(b) + Table[(a+b)&7]*b + demo_scale + b + InitSeed
//
// where demo_helper(x) = 3x+1 (called through the PLT for a, through a
// pointer in data for b), the lone b term is read back from a .bss slot
// that must start at zero, and InitSeed is set by the constructor.
func Expected(a, b int64) int64 {
	return ExpectedWith(a, b, InitialScale)
}

// ExpectedWith is Expected for a library whose demo_scale has been set to
// scale, for tests that write the exported variable.
func ExpectedWith(a, b, scale int64) int64 {
	return helper(a) + helper(b) + Table[(a+b)&7]*b + scale + b + InitSeed
}

// helper is demo_helper.
func helper(x int64) int64 {
	return 3*x + 1
}
