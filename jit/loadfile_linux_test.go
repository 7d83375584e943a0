package jit

import (
	"debug/elf"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// TestLoadProgramMapsSegments checks that LoadProgram maps a program's
// segments from its file as the kernel does: every page holding file
// bytes a private view of the file under the kernel's name for it, the
// pages past them zero-filled anonymous memory, the bytes after p_filesz
// in a segment's last file page zero, and aspacem agreeing with the
// kernel.
func TestLoadProgramMapsSegments(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			// kernels has a data segment whose zero fill starts
			// inside its last file page.
			path := buildProgram(t, "kernels", kind.name)
			v, m := newProgramMachine(t)
			p, err := m.LoadProgram(path)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			vmmtest.SyncCheck(t, v, "after loading")
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !mappable(f) {
				t.Fatalf("%s: segments not mappable from the file; the test wants a program whose are", path)
			}
			page := uintptr(mem.PageSize)
			bss := 0
			for _, ph := range f.Progs {
				if ph.Type != elf.PT_LOAD {
					continue
				}
				start := p.bias + uintptr(ph.Vaddr)
				fileEnd, _ := mem.AlignUp(start+uintptr(ph.Filesz), page)
				end, _ := mem.AlignUp(start+uintptr(ph.Memsz), page)
				for a := mem.AlignDown(start, page); a < end; a += page {
					s, ok := v.Space().Lookup(a)
					want := aspacem.KindAnon
					if a < fileEnd && ph.Filesz > 0 {
						want = aspacem.KindFile
					}
					if !ok || s.Kind != want || s.Owner != p.owner || (want == aspacem.KindFile && s.Name != p.exe) {
						t.Errorf("page %#x of the segment at %#x: %v (%q, %q), want %v of %q named %q", a, ph.Vaddr, s.Kind, s.Owner, s.Name, want, p.owner, p.exe)
					}
				}
				if ph.Memsz > ph.Filesz && ph.Filesz > 0 {
					bss++
					z := start + uintptr(ph.Filesz)
					for i, b := range rawmem.Bytes(z, min(fileEnd, start+uintptr(ph.Memsz))-z) {
						if b != 0 {
							t.Fatalf("byte %#x after p_filesz of the segment at %#x is %#x, want 0", i, ph.Vaddr, b)
						}
					}
				}
			}
			if bss == 0 {
				t.Errorf("%s has no segment with both file bytes and zero fill: nothing checked the zeroing", path)
			}
		})
	}
}

// TestLoadProgramPackedSegments runs a program linked with its segments
// packed together (sharing pages, offsets not congruent to the page),
// which LoadProgram reads into committed memory instead of mapping, and
// compares it with the native run of the same program linked the usual
// way. (Natively the packed one dies of SIGSEGV: the kernel maps each
// segment's whole pages from the file, the later over the earlier where
// they share one; the loader copies both segments' bytes there.)
func TestLoadProgramPackedSegments(t *testing.T) {
	ref := buildProgram(t, "kernels", kern.Exec)
	path := buildProgram(t, "kernels", kern.Exec, "-Wl,-z,max-page-size=0x10,-z,common-page-size=0x10,-z,noseparate-code")
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	packed := !mappable(f)
	f.Close()
	if !packed {
		t.Fatalf("%s: the linker kept the segments apart; the test wants them sharing pages", path)
	}
	for _, k := range []struct{ name, arg string }{{"k_fib", "20"}, {"k_sort", "2000"}} {
		want, wantCode := runNative(t, ref, k.name, k.arg)
		got, stderr, code := runProgram(t, path, false, k.name, k.arg)
		if code != wantCode || got != want {
			t.Errorf("%s: status %d, output %q (stderr %q), want %d, %q", k.name, code, got, stderr, wantCode, want)
		}
	}
}

// TestMappable checks which segment layouts are mapped from the file and
// which are read instead.
func TestMappable(t *testing.T) {
	load := func(vaddr, off, filesz, memsz uint64) *elf.Prog {
		return &elf.Prog{ProgHeader: elf.ProgHeader{Type: elf.PT_LOAD, Vaddr: vaddr, Off: off, Filesz: filesz, Memsz: memsz}}
	}
	for _, c := range []struct {
		name  string
		progs []*elf.Prog
		want  bool
	}{
		{"apart", []*elf.Prog{load(0x400000, 0, 0x1234, 0x1234), load(0x402000, 0x2000, 0x100, 0x3000)}, true},
		{"congruent offsets", []*elf.Prog{load(0x400000, 0, 0x1234, 0x1234), load(0x403db0, 0x2db0, 0x268, 0x270)}, true},
		{"bss only", []*elf.Prog{load(0x400000, 0, 0x1000, 0x1000), load(0x401000, 0, 0, 0x5000)}, true},
		{"one page, two segments", []*elf.Prog{load(0x400000, 0, 0x800, 0x800), load(0x400800, 0x800, 0x100, 0x100)}, false},
		{"offset not congruent", []*elf.Prog{load(0x400000, 0, 0x1000, 0x1000), load(0x402000, 0x1100, 0x100, 0x100)}, false},
	} {
		f := &elf.File{Progs: c.progs}
		if got := mappable(f); got != c.want {
			t.Errorf("%s: mappable %v, want %v", c.name, got, c.want)
		}
	}
}

// BenchmarkProgramStart starts jit/kernels' hello (a static PIE) and waits
// for its exit: natively, a process each (native), and under the
// translator in this process, LoadProgram, Run and Close on one machine
// (reachvm), as an embedder running programs one after another. Its
// output goes to /dev/null. faults/op are the page faults taken (the
// child's rusage natively; the process's own under the translator, GC
// and all).
func BenchmarkProgramStart(b *testing.B) {
	path := buildProgram(b, "hello", kern.PIE)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	b.Run("native", func(b *testing.B) {
		var faults int64
		for b.Loop() {
			cmd := exec.Command(path)
			cmd.Stdout = null
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			faults += ru.Minflt + ru.Majflt
		}
		b.ReportMetric(float64(faults)/float64(b.N), "faults/op")
	})
	b.Run("reachvm", func(b *testing.B) {
		_, m := newProgramMachine(b)
		saved, err := unix.Dup(1)
		if err != nil {
			b.Fatal(err)
		}
		defer func() {
			_ = unix.Dup2(saved, 1)
			_ = unix.Close(saved)
		}()
		if err := unix.Dup2(int(null.Fd()), 1); err != nil {
			b.Fatal(err)
		}
		var before, after unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &before)
		for b.Loop() {
			p, err := m.LoadProgram(path)
			if err != nil {
				b.Fatal(err)
			}
			if code, err := p.Run([]string{path}, nil); err != nil || code != 0 {
				b.Fatalf("status %d, %v", code, err)
			}
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
		}
		_ = unix.Getrusage(unix.RUSAGE_SELF, &after)
		b.ReportMetric(float64(after.Minflt+after.Majflt-before.Minflt-before.Majflt)/float64(b.N), "faults/op")
	})
}
