//go:build linux && amd64

package jit

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// newProgramMachine returns a VMM and a machine for running programs in
// this process, closed when the test ends.
func newProgramMachine(t testing.TB) (*vmm.VMM, *Machine) {
	t.Helper()
	v, err := vmm.New(vmm.Config{AllowElsewhere: true, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMachine(vmcode.New(v), nil)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	})
	return v, m
}

// TestProgramMemory runs memops, which brks, mmaps (anonymous, fixed,
// no-replace, PROT_NONE, a file), mprotects and munmaps, checking every
// result itself; then checks that aspacem matches the kernel after the
// run, that it records what the program left mapped as the program's,
// with the protections it set, that the refused calls say why, and that
// after Close aspacem holds nothing of the program and still matches the
// kernel.
func TestProgramMemory(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			path := buildProgram(t, "memops", kind.name)
			v, m := newProgramMachine(t)
			p, err := m.LoadProgram(path)
			if err != nil {
				t.Fatal(err)
			}
			vmmtest.SyncCheck(t, v, "after loading")
			code, err := p.Run([]string{path}, nil)
			if err != nil || code != 0 {
				t.Fatalf("memops: status %d, %v (a status names the step that failed)", code, err)
			}
			vmmtest.SyncCheck(t, v, "after the run")

			// What the program left mapped, page by page; its file
			// through /proc/self/exe is its own.
			exe := exePath(path)
			pages := map[string]uintptr{}
			for _, s := range v.Space().Owned() {
				switch s.Owner {
				case p.mmapOwner:
					key := s.Kind.String() + " " + s.Prot.String()
					if s.Kind == aspacem.KindFile {
						if s.Name != exe {
							t.Errorf("file view of %q, want the executable %q (/proc/self/exe)", s.Name, exe)
						}
					}
					pages[key] += s.Size() / mem.PageSize
				case p.owner + " brk":
					if s.Kind == aspacem.KindAnon {
						pages["brk "+s.Prot.String()] += s.Size() / mem.PageSize
					}
				}
			}
			// 16 pages: 0-1 replaced and 2-3 read-write, 4-7 read-only,
			// 8-11 unmapped, 12-15 read-write; 4 PROT_NONE pages, the
			// first made read-write; one page of the file; brk at 12
			// pages.
			want := map[string]uintptr{"anon rw-": 2 + 2 + 4 + 1, "anon r--": 4, "anon ---": 3, "file r--": 1, "brk rw-": 12}
			for k, n := range want {
				if pages[k] != n {
					t.Errorf("%s: %d pages, want %d (all: %v)", k, pages[k], n, pages)
				}
			}

			refusals, n := p.Refusals()
			var text []string
			for _, r := range refusals {
				text = append(text, r.String())
			}
			all := strings.Join(text, "\n")
			for _, want := range []string{
				"mmap [", "-> file exists", // MAP_FIXED_NOREPLACE over the program's mapping
				"mprotect", "PROT_READ|PROT_WRITE|PROT_EXEC", // the unknown protection bit
				"munmap", "unaligned",
				"shared anonymous memory is not emulated", // MAP_SHARED|MAP_ANONYMOUS
			} {
				if !strings.Contains(all, want) {
					t.Errorf("refusals do not mention %q:\n%s", want, all)
				}
			}
			if n != len(refusals) || n != 4 {
				t.Errorf("%d refusals (%d kept), want 4:\n%s", n, len(refusals), all)
			}

			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			vmmtest.SyncCheck(t, v, "after Close")
			for _, s := range v.Space().Owned() {
				if strings.HasPrefix(s.Owner, "client ") {
					t.Errorf("after Close aspacem still records %v", s)
				}
			}
			// Whether the kernel still maps what the program left is not
			// checked: the Go runtime may map freed addresses again at any
			// moment. The sync check covers what reachvm owns.
		})
	}
}

// TestProgramRefusesReachvmMemory: a program's munmap and mprotect of
// vmheap, and its MAP_FIXED over the machine's cache, fail with ENOMEM and
// are recorded saying what they would have touched.
func TestProgramRefusesReachvmMemory(t *testing.T) {
	path := buildProgram(t, "vet", kern.PIE)
	v, m := newProgramMachine(t)
	p, err := m.LoadProgram(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	hb, _ := v.VMHeap()
	code, err := p.Run([]string{path, strconv.FormatUint(uint64(hb), 16)}, nil)
	if err != nil || code != 7 {
		t.Fatalf("vet: status %d, %v", code, err)
	}
	refusals, _ := p.Refusals()
	if len(refusals) != 2 || refusals[0].Call != "mmap" || refusals[1].Call != "munmap" {
		t.Fatalf("refusals %v, want the fixed mmap and the munmap", refusals)
	}
	for _, r := range refusals {
		if r.Errno != unix.ENOMEM || !strings.Contains(r.Reason, "vmheap") {
			t.Errorf("refusal %v: want ENOMEM naming vmheap", r)
		}
	}
	vmmtest.SyncCheck(t, v, "after the refused calls")
}

// BenchmarkProgramMmap measures a program's mmap, touch and munmap of 64
// KiB: raw (the same system calls from Go, the baseline), through the
// VMM's application memory API from Go, and emulated for a program under
// the translator (memops bench), which adds the system call's exit from
// the cache and the dispatch.
func BenchmarkProgramMmap(b *testing.B) {
	const size = 64 << 10
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
			if err != nil {
				b.Fatal(err)
			}
			m[0] = 1
			if err := unix.Munmap(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vmm", func(b *testing.B) {
		v, _ := newProgramMachine(b)
		for b.Loop() {
			r, err := v.MapAppAnon(0, size, mem.ProtRW, mem.Hint, "bench")
			if err != nil {
				b.Fatal(err)
			}
			rawmem.Bytes(r.Start, 1)[0] = 1
			if err := v.ReleaseApp(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("program", func(b *testing.B) {
		path := buildProgram(b, "memops", kern.PIE)
		_, m := newProgramMachine(b)
		p, err := m.LoadProgram(path)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		// Translate the loop once before timing.
		if code, err := p.Run([]string{path, "bench", "10"}, nil); err != nil || code != 0 {
			b.Fatalf("memops bench: %d, %v", code, err)
		}
		b.ResetTimer()
		code, err := p.Run([]string{path, "bench", strconv.Itoa(b.N)}, nil)
		if err != nil || code != 0 {
			b.Fatalf("memops bench: %d, %v", code, err)
		}
	})
}

// TestProgramLoadFailureLeavesNothing: a static PIE whose dynamic table
// the loader refuses (its DT_DEBUG turned into a DT_TEXTREL) fails after
// its image and segments are in memory; the failure leaves nothing of it.
func TestProgramLoadFailureLeavesNothing(t *testing.T) {
	path := buildProgram(t, "hello", kern.PIE)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ds := f.SectionByType(elf.SHT_DYNAMIC)
	if ds == nil {
		t.Fatal("hello (static PIE) has no dynamic section")
	}
	patched := false
	for i := ds.Offset; i+16 <= ds.Offset+ds.Size; i += 16 {
		if elf.DynTag(binary.LittleEndian.Uint64(data[i:])) == elf.DT_DEBUG {
			binary.LittleEndian.PutUint64(data[i:], uint64(elf.DT_TEXTREL))
			patched = true
			break
		}
	}
	if !patched {
		t.Fatal("hello (static PIE) has no DT_DEBUG to patch")
	}
	bad := filepath.Join(t.TempDir(), "hello-textrel")
	if err := os.WriteFile(bad, data, 0o755); err != nil {
		t.Fatal(err)
	}
	v, m := newProgramMachine(t)
	_, err = m.LoadProgram(bad)
	var pe *ProgramError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "DT_TEXTREL") {
		t.Fatalf("got %v, want a ProgramError naming DT_TEXTREL", err)
	}
	vmmtest.SyncCheck(t, v, "after the failed load")
	for _, s := range v.Space().Owned() {
		if strings.HasPrefix(s.Owner, "client ") {
			t.Errorf("the failed load left %v", s)
		}
	}
}
