//go:build linux && amd64

package jit

import (
	"debug/elf"
	"os"
	"sort"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/vmm"
)

// bigLibraries are the real code the translation benchmark translates:
// LLVM's 53 MiB of text where installed, libc's 1.6 MiB everywhere.
var bigLibraries = []string{
	"/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1",
	"/usr/lib/x86_64-linux-gnu/libc.so.6",
}

// mapText maps a library's file read-execute, unrelocated (its code is
// only translated, never run), and returns the mapped addresses of its
// function symbols, in address order.
func mapText(t testing.TB, path string) []uintptr {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	text := f.Section(".text")
	if text == nil {
		t.Skipf("%s: no .text", path)
	}
	syms, _ := f.DynamicSymbols()
	more, _ := f.Symbols()
	syms = append(syms, more...)
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	st, _ := fd.Stat()
	mem, err := unix.Mmap(int(fd.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	base := ptr(mem)
	seen := map[uintptr]bool{}
	var fns []uintptr
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || s.Value < text.Addr || s.Value >= text.Addr+text.Size {
			continue
		}
		a := base + uintptr(s.Value-text.Addr+text.Offset)
		if !seen[a] {
			seen[a] = true
			fns = append(fns, a)
		}
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i] < fns[j] })
	return fns
}

// BenchmarkTranslate translates the code at every function of a large
// library, in turn, and reports basic blocks and fragments translated per
// second (the target: 200,000 basic blocks a second; DynamoRIO
// builds about 100,000). "bb" makes every fragment one basic block, as
// DynamoRIO's blocks are; "superblock" is the default (up to 8 basic
// blocks a fragment). The cache is flushed when it fills, as in a run.
func BenchmarkTranslate(b *testing.B) {
	for _, lib := range bigLibraries {
		if _, err := os.Stat(lib); err != nil {
			continue
		}
		fns := mapText(b, lib)
		for _, mode := range []struct {
			name string
			max  int
		}{{"bb", 1}, {"superblock", 0}} {
			b.Run(lib[len("/usr/lib/x86_64-linux-gnu/"):]+"/"+mode.name, func(b *testing.B) {
				m, _ := newTestMachine(b, vmm.Config{VMCodeSize: 512 << 20}, &Options{MaxBlocks: mode.max, MaxCacheSize: 256 << 20})
				translateLoop(b, m, fns)
				st := m.Stats()
				secs := b.Elapsed().Seconds()
				b.ReportMetric(float64(st.Blocks)/secs, "bb/s")
				b.ReportMetric(float64(st.Fragments)/secs, "fragments/s")
				b.ReportMetric(float64(st.Instrs)/float64(st.Blocks), "instrs/bb")
			})
		}
	}
}

// BenchmarkTranslateViews is BenchmarkTranslate's superblock case over
// libc with each tool shown the code, against none in the same process:
// the perf map (a line per piece), the jitdump (a record per piece, with
// its code) and gdb's JIT interface (an ELF object per fragment, with
// its call frame information, registered; no gdb attached).
func BenchmarkTranslateViews(b *testing.B) {
	const lib = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	if _, err := os.Stat(lib); err != nil {
		b.Skip(err)
	}
	fns := mapText(b, lib)
	b.Setenv("JITDUMPDIR", b.TempDir())
	perfMap, _ := os.ReadFile(PerfMapPath())
	b.Cleanup(func() {
		resetJitDump()
		if perfMap == nil {
			os.Remove(PerfMapPath())
		}
	})
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"none", Options{}},
		{"perfmap", Options{PerfMap: true}},
		{"jitdump", Options{JitDump: true}},
		{"gdb", Options{GDB: true}},
		{"all", Options{PerfMap: true, JitDump: true, GDB: true}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			resetJitDump()
			opts := mode.opts
			opts.MaxCacheSize = 256 << 20
			m, _ := newTestMachine(b, vmm.Config{VMCodeSize: 512 << 20}, &opts)
			translateLoop(b, m, fns)
			st := m.Stats()
			b.ReportMetric(float64(st.Fragments)/b.Elapsed().Seconds(), "fragments/s")
		})
	}
}

// translateLoop is the timed loop of the translation benchmarks: one
// fragment an iteration, from fns in turn, the cache flushed after each
// round so that every fragment is translated again.
func translateLoop(b *testing.B, m *Machine, fns []uintptr) {
	for i := 0; b.Loop(); {
		if _, err := m.fragmentFor(fns[i%len(fns)]); err != nil {
			b.Fatal(err)
		}
		i++
		if i%len(fns) == 0 {
			m.flush()
		}
	}
}
