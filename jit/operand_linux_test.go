//go:build linux && amd64

package jit_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// runDemo runs libdemo's demo_compute(6, 7) under a machine with client
// c, and returns the library (closed at the test's end by the caller's
// cleanup) for its addresses.
func runDemo(c *jit.Client, dir string) (*privload.Library, func(), error) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o644); err != nil {
		v.Close()
		return nil, nil, err
	}
	lib, err := privload.Load(v, path, privload.Options{})
	if err != nil {
		v.Close()
		return nil, nil, err
	}
	m, err := jit.NewMachine(vmcode.New(v), &jit.Options{Client: c})
	if err != nil {
		lib.Close()
		v.Close()
		return nil, nil, err
	}
	done := func() { m.Close(); lib.Close(); v.Close() }
	fn, _ := lib.Lookup(demolib.Compute)
	if _, err := m.Run(fn, 6, 7); err != nil {
		done()
		return nil, nil, err
	}
	return lib, done, nil
}

// ExampleInstr_Mnemonic prints the mnemonics of the first basic block
// libdemo's demo_compute runs, and the memory its instructions write.
func ExampleInstr_Mnemonic() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	first := true
	client := &jit.Client{Block: func(b *jit.Block) {
		if !first {
			return
		}
		first = false
		var names []string
		writes := 0
		for k := 0; k < b.Len(); k++ {
			in := b.Instr(k)
			names = append(names, in.Mnemonic())
			for _, m := range in.MemRefs() {
				if m.Write {
					writes++
				}
			}
		}
		fmt.Println(strings.Join(names, " "))
		fmt.Println(writes, "memory writes")
	}}
	_, done, err := runDemo(client, dir)
	if err != nil {
		panic(err)
	}
	done()
	// Output:
	// push mov lea push xor push and mov push mov add and sub mov add mov mov mov mov add mov call
	// 8 memory writes
}

// objdumpLine is an instruction as objdump shows it.
type objdumpLine struct {
	addr uint64
	asm  string
}

// TestInstrOperandsDemo runs demo_compute under a client that decodes
// every instruction it is shown and checks them against objdump's
// disassembly of the same library: mnemonics, branch targets and the
// absolute addresses of RIP-relative operands (objdump's "# addr"
// comments), and that each memory operand objdump shows is a MemRef.
func TestInstrOperandsDemo(t *testing.T) {
	if _, err := exec.LookPath("objdump"); err != nil {
		t.Skip("no objdump")
	}
	path := filepath.Join(t.TempDir(), demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("objdump", "-d", "-M", "intel", "--no-show-raw-insn", "-j", ".text", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.SplitN(line, ":\t", 2)
		if len(f) != 2 {
			continue
		}
		a, err := strconv.ParseUint(strings.TrimSpace(f[0]), 16, 64)
		if err != nil {
			continue
		}
		want[a] = strings.Join(strings.Fields(f[1]), " ")
	}
	type seen struct {
		mnemonic string
		ops      []jit.Operand
		mems     []jit.MemRef
		err      error
	}
	got := map[uintptr]seen{}
	client := &jit.Client{Block: func(b *jit.Block) {
		for k := 0; k < b.Len(); k++ {
			in := b.Instr(k)
			got[in.PC()] = seen{in.Mnemonic(), append([]jit.Operand(nil), in.Operands()...), append([]jit.MemRef(nil), in.MemRefs()...), in.OperandsErr()}
		}
	}}
	lib, done, err := runDemo(client, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	base := lib.Base()
	var n, rips, targets int
	for pc, s := range got {
		asm, ok := want[uint64(pc-base)]
		if !ok {
			continue // not in .text (the PLT)
		}
		n++
		if s.err != nil {
			t.Errorf("%#x %s: %v", pc-base, asm, s.err)
			continue
		}
		mn := strings.Fields(asm)[0]
		if mn == "notrack" || mn == "bnd" {
			mn = strings.Fields(asm)[1]
		}
		if s.mnemonic != mn {
			t.Errorf("%#x %s: mnemonic %q", pc-base, asm, s.mnemonic)
		}
		if strings.Contains(asm, "[") && len(s.mems) == 0 {
			t.Errorf("%#x %s: no MemRef", pc-base, asm)
		}
		if i := strings.Index(asm, "# "); i >= 0 && strings.Contains(asm, "[rip") {
			a, _ := strconv.ParseUint(strings.Fields(asm[i+2:])[0], 16, 64)
			if len(s.mems) == 0 || !s.mems[0].RIPRelative || s.mems[0].Disp != int64(base)+int64(a) {
				t.Errorf("%#x %s: MemRefs %+v, want RIP-relative %#x", pc-base, asm, s.mems, base+uintptr(a))
			}
			rips++
		}
		for _, op := range s.ops {
			if op.Kind != jit.OperandTarget {
				continue
			}
			a, _ := strconv.ParseUint(strings.Fields(asm)[1], 16, 64)
			if op.Target != base+uintptr(a) {
				t.Errorf("%#x %s: target %#x, want %#x", pc-base, asm, op.Target, base+uintptr(a))
			}
			targets++
		}
	}
	t.Logf("%d instructions, %d RIP-relative operands, %d branch targets agree with objdump", n, rips, targets)
	if n == 0 || rips == 0 || targets == 0 {
		t.Fatalf("too little compared: %d instructions, %d RIP-relative, %d targets", n, rips, targets)
	}
}

// TestInstrOperandsPush checks the flags and the stack slot of the
// block's instructions on demo_compute's first block: push writes the
// 8 bytes below rsp, xor and and write all six flags, mov none.
func TestInstrOperandsPush(t *testing.T) {
	checked := 0
	client := &jit.Client{Block: func(b *jit.Block) {
		for k := 0; k < b.Len(); k++ {
			in := b.Instr(k)
			switch in.Mnemonic() {
			case "push":
				m := in.MemRefs()
				if len(m) != 1 || !m[0].Implicit || !m[0].Write || m[0].Read || m[0].Base != jit.RSP || m[0].Disp != -8 || m[0].Size != 8 {
					t.Errorf("%#x push: MemRefs %+v", in.PC(), m)
				}
				if ops := in.Operands(); len(ops) != 1 || !ops[0].Read || ops[0].Write {
					t.Errorf("%#x push: Operands %+v", in.PC(), ops)
				}
				checked++
			case "xor", "and":
				if in.FlagsWritten() != jit.AllFlags || in.FlagsRead() != 0 {
					t.Errorf("%#x %s: flags read %v, written %v", in.PC(), in.Mnemonic(), in.FlagsRead(), in.FlagsWritten())
				}
				checked++
			case "mov":
				if in.FlagsWritten() != 0 || in.FlagsRead() != 0 {
					t.Errorf("%#x mov: flags read %v, written %v", in.PC(), in.FlagsRead(), in.FlagsWritten())
				}
				ops := in.Operands()
				if len(ops) != 2 || !ops[0].Write || ops[0].Read && ops[0].Kind != jit.OperandReg || !ops[1].Read {
					t.Errorf("%#x mov: Operands %+v", in.PC(), ops)
				}
				checked++
			}
		}
	}}
	_, done, err := runDemo(client, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	done()
	if checked == 0 {
		t.Fatal("nothing checked")
	}
}
