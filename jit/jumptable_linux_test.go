//go:build linux && amd64

package jit

import (
	"encoding/binary"
	"regexp"
	"strconv"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// TestJumpTablePrograms runs jumptab natively and under the translator
// with vmcode low, where its switch and its computed goto take translated
// tables, and high, where they take sites: the output is native's, the
// tables are counted low and not high, and the ET_EXEC's goto table,
// changed twice, deleted what was translated through it (a static PIE,
// which nothing relocates, runs only the switch).
func TestJumpTablePrograms(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			path := buildProgram(t, "jumptab", kind.name)
			var args []string
			if kind.name == kern.Exec {
				args = []string{"goto"}
			}
			want, wantCode := runNative(t, path, args...)
			for _, low := range []bool{true, false} {
				env := []string{"REACHVM_PROGRAM_STATS=1"}
				if low {
					env = append(env, "REACHVM_PROGRAM_LOW=1")
				}
				got, stderr, code := runProgramEnv(t, path, env, programTimeout, args...)
				if code != wantCode || got != want {
					t.Fatalf("low %v: status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", low, code, got, stderr, wantCode, want)
				}
				tables, invalidated := statField(t, stderr, "JumpTables"), statField(t, stderr, "Invalidated")
				switch {
				case low && tables == 0, !low && tables != 0:
					t.Errorf("low %v: %d jump tables translated", low, tables)
				case low && kind.name == kern.Exec && invalidated == 0:
					t.Errorf("low: no fragment deleted for the goto table's changes")
				}
			}
		})
	}
}

// statField returns field name of the Stats a child printed last on
// stderr (REACHVM_PROGRAM_STATS).
func statField(t *testing.T, stderr, name string) int {
	t.Helper()
	m := regexp.MustCompile(`\b` + name + `:(\d+)\b`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no %s in the child's stderr:\n%s", name, stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestJumpTableOwnIndex runs a switch in gcc's form whose load
// overwrites its own index,
//
//	and edi, 3; mov eax, edi; lea rsi, [rip+T]
//	movsxd rax, dword [rsi+rax*4]; add rax, rsi; jmp rax
//
// with the table on a read-only page, natively and translated with and
// without jump tables: the results are native's, and the switch takes a
// translated table unless Options.NoJumpTables. The last case reads rax,
// which the jump borrowed and the target's prefix gives back.
func TestJumpTableOwnIndex(t *testing.T) {
	for _, noTables := range []bool{false, true} {
		m, _ := newTestMachine(t, vmm.Config{VMCodeBase: lowBase}, &Options{NoJumpTables: noTables})
		r, err := m.v.MapAppAnon(0, 2*mem.PageSize, mem.ProtRW, mem.Hint, "jump table test")
		if err != nil {
			t.Fatal(err)
		}
		code, table := r.Start, r.Start+mem.PageSize
		fn := []byte{
			0x83, 0xe7, 0x03, // and edi, 3
			0x89, 0xf8, // mov eax, edi
			0x48, 0x8d, 0x35, 0, 0, 0, 0, // lea rsi, [rip+table]
			0x48, 0x63, 0x04, 0x86, // movsxd rax, dword [rsi+rax*4]
			0x48, 0x01, 0xf0, // add rax, rsi
			0xff, 0xe0, // jmp rax
		}
		binary.LittleEndian.PutUint32(fn[8:], uint32(table-(code+12)))
		var entries []byte
		for k := range 4 {
			at := code + uintptr(len(fn))
			entries = binary.LittleEndian.AppendUint32(entries, uint32(int32(int64(at)-int64(table))))
			if k < 3 {
				fn = append(fn, 0xb8, byte(10*k+1), 0, 0, 0, 0xc3) // mov eax, 10k+1; ret
			} else {
				fn = append(fn, 0x83, 0xc0, 0x05, 0xc3) // add eax, 5; ret
			}
		}
		putCode(code, fn)
		putCode(table, entries)
		if err := m.v.ProtectApp(mem.Range{Start: code, End: table}, mem.ProtRX); err != nil {
			t.Fatal(err)
		}
		if err := m.v.ProtectApp(mem.Range{Start: table, End: r.End}, mem.ProtRead); err != nil {
			t.Fatal(err)
		}
		for i := range uintptr(12) {
			want := Call(code, i)
			if got, err := m.Run(code, i); err != nil || got != want {
				t.Fatalf("NoJumpTables %v, case %d: %#x, %v; native %#x", noTables, i, got, err, want)
			}
		}
		switch n := m.Stats().JumpTables; {
		case !noTables && n == 0:
			t.Errorf("the switch took no translated table")
		case noTables && n != 0:
			t.Errorf("NoJumpTables: %d tables translated", n)
		}
	}
}

// BenchmarkJumpTables times k_interp, a switch interpreter, natively, with
// its switch translated into a table of cache addresses ("tables") and
// with Options.NoJumpTables ("sites", the baseline: an indirect-branch
// site), in one process with vmcode low.
func BenchmarkJumpTables(b *testing.B) {
	const n = 3000
	for _, c := range []struct {
		name string
		opts Options
	}{{"tables", Options{}}, {"sites", Options{NoJumpTables: true}}} {
		m, _ := newTestMachine(b, vmm.Config{VMCodeBase: lowBase}, &c.opts)
		lib := loadKernels(b, m.v)
		fn := lookup(b, lib, "k_interp")
		want := Call(fn, n)
		if c.name == "tables" {
			b.Run("native", func(b *testing.B) {
				m.RunNative(fn, n)
				for b.Loop() {
					m.RunNative(fn, n)
				}
			})
		}
		b.Run(c.name, func(b *testing.B) {
			if got, err := m.Run(fn, n); err != nil || got != want {
				b.Fatalf("%#x, %v; native %#x", got, err, want)
			}
			for b.Loop() {
				m.Run(fn, n)
			}
		})
	}
}
