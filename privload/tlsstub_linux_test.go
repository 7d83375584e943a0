//go:build linux

package privload

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestTLSStubDisassembly checks the hand-written __tls_get_addr against
// objdump: every instruction decodes as the comment of tlsStubCode says,
// at the offsets the jumps assume, with the key, the addresses and the
// token in their immediates.
func TestTLSStubDisassembly(t *testing.T) {
	if _, err := exec.LookPath("objdump"); err != nil {
		t.Skipf("no objdump: %v", err)
	}
	code := tlsStubCode(0x11223344, 0x7f0011223344, 0x55, 0x7f0055667788)
	bin := filepath.Join(t.TempDir(), "stub.bin")
	if err := os.WriteFile(bin, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	want := []struct {
		off  int
		text string
	}{
		{0x00, "push rbp"},
		{0x01, "mov rbp,rsp"},
		{0x04, "and rsp,0xfffffffffffffff0"},
		{0x08, "push rdi"},
		{0x09, "push rdi"},
		{0x0a, "mov edi,0x11223344"},
		{0x0f, "movabs rax,0x7f0011223344"},
		{0x19, "call rax"},
		{0x1b, "pop rdi"},
		{0x1c, "pop rdi"},
		{0x1d, "test rax,rax"},
		{0x20, "je 0x38"},
		{0x22, "mov rcx,QWORD PTR [rdi]"},
		{0x25, "dec rcx"},
		{0x28, "cmp rcx,QWORD PTR [rax]"},
		{0x2b, "jae 0x38"},
		{0x2d, "mov rax,QWORD PTR [rax+rcx*8+0x8]"},
		{0x32, "add rax,QWORD PTR [rdi+0x8]"},
		{0x36, "leave"},
		{0x37, "ret"},
		{tlsSlowOffset, "movabs rsi,0x55"},
		{0x42, "movabs rax,0x7f0055667788"},
		{0x4c, "call rax"},
		{0x4e, "leave"},
		{0x4f, "ret"},
	}
	line := regexp.MustCompile(`^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*\t(.*)$`)
	var got []string
	offs := map[int]string{}
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var off int
		for _, c := range m[1] {
			off = off*16 + strings.IndexRune("0123456789abcdef", c)
		}
		text := strings.Join(strings.Fields(m[2]), " ")
		offs[off] = text
		got = append(got, text)
	}
	if len(got) != len(want) {
		t.Errorf("objdump decodes %d instructions, want %d:\n%s", len(got), len(want), out)
	}
	for _, w := range want {
		if offs[w.off] != w.text {
			t.Errorf("at %#x: objdump says %q, want %q", w.off, offs[w.off], w.text)
		}
	}
	if len(code) != 0x50 || len(code) > tlsDescOffset {
		t.Errorf("stub is %d bytes, want 0x50", len(code))
	}
	checkDisassembly(t, tlsDescCode(0x11223344, 0x7f0011223344, 0x55, 0x7f0055667788), tlsDescWant)
}

// tlsDescWant is tlsDescCode's disassembly, by offset.
var tlsDescWant = []struct {
	off  int
	text string
}{
	{0x0, "push rbp"},
	{0x1, "mov rbp,rsp"},
	{0x4, "push rbx"},
	{0x5, "push rdi"},
	{0x6, "push rsi"},
	{0x7, "push rdx"},
	{0x8, "push rcx"},
	{0x9, "push r8"},
	{0xb, "push r9"},
	{0xd, "push r10"},
	{0xf, "push r11"},
	{0x11, "and rsp,0xffffffffffffffc0"},
	{0x15, "mov rbx,QWORD PTR [rax+0x8]"},
	{0x19, "mov edi,0x11223344"},
	{0x1e, "movabs rax,0x7f0011223344"},
	{0x28, "call rax"},
	{0x2a, "test rax,rax"},
	{0x2d, "je 0x5f"},
	{0x2f, "mov rcx,QWORD PTR [rbx]"},
	{0x32, "dec rcx"},
	{0x35, "cmp rcx,QWORD PTR [rax]"},
	{0x38, "jae 0x5f"},
	{0x3a, "mov rax,QWORD PTR [rax+rcx*8+0x8]"},
	{0x3f, "add rax,QWORD PTR [rbx+0x8]"},
	{0x43, "sub rax,QWORD PTR fs:0x0"},
	{0x4c, "lea rsp,[rbp-0x48]"},
	{0x50, "pop r11"},
	{0x52, "pop r10"},
	{0x54, "pop r9"},
	{0x56, "pop r8"},
	{0x58, "pop rcx"},
	{0x59, "pop rdx"},
	{0x5a, "pop rsi"},
	{0x5b, "pop rdi"},
	{0x5c, "pop rbx"},
	{0x5d, "leave"},
	{0x5e, "ret"},
	{0x5f, "sub rsp,0x1000"},
	{0x66, "mov QWORD PTR [rsp+0x200],0x0"},
	{0x72, "mov QWORD PTR [rsp+0x208],0x0"},
	{0x7e, "mov QWORD PTR [rsp+0x210],0x0"},
	{0x8a, "mov QWORD PTR [rsp+0x218],0x0"},
	{0x96, "mov QWORD PTR [rsp+0x220],0x0"},
	{0xa2, "mov QWORD PTR [rsp+0x228],0x0"},
	{0xae, "mov QWORD PTR [rsp+0x230],0x0"},
	{0xba, "mov QWORD PTR [rsp+0x238],0x0"},
	{0xc6, "mov eax,0xe7"},
	{0xcb, "xor edx,edx"},
	{0xcd, "xsave [rsp]"},
	{0xd1, "mov rdi,rbx"},
	{0xd4, "movabs rsi,0x55"},
	{0xde, "movabs rax,0x7f0055667788"},
	{0xe8, "call rax"},
	{0xea, "mov rbx,rax"},
	{0xed, "mov eax,0xe7"},
	{0xf2, "xor edx,edx"},
	{0xf4, "xrstor [rsp]"},
	{0xf8, "mov rax,rbx"},
	{0xfb, "jmp 0x43"},
}

// checkDisassembly compares objdump's disassembly of code with want.
func checkDisassembly(t *testing.T, code []byte, want []struct {
	off  int
	text string
}) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "code.bin")
	if err := os.WriteFile(bin, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("objdump", "-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	offs := objdumpInstrs(string(out))
	if len(offs) != len(want) {
		t.Errorf("objdump decodes %d instructions, want %d:\n%s", len(offs), len(want), out)
	}
	for _, w := range want {
		if offs[w.off] != w.text {
			t.Errorf("at %#x: objdump says %q, want %q", w.off, offs[w.off], w.text)
		}
	}
}

// objdumpInstrs maps each instruction's offset in objdump's output to its
// text, spaces collapsed.
func objdumpInstrs(out string) map[int]string {
	line := regexp.MustCompile(`^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*\t(.*)$`)
	offs := map[int]string{}
	for _, l := range strings.Split(out, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		off, err := strconv.ParseInt(m[1], 16, 64)
		if err != nil {
			continue
		}
		offs[int(off)] = strings.Join(strings.Fields(m[2]), " ")
	}
	return offs
}

// TestEHFramePtr decodes the .eh_frame pointer of .eh_frame_hdr headers
// in each encoding the loader accepts, and refuses the others.
func TestEHFramePtr(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  []byte
		// want is relative to the header's address if pcrel.
		want  int64
		pcrel bool
		ok    bool
	}{
		{"pcrel sdata4 (ld)", []byte{1, 0x1b, 0x03, 0x3b, 0xf0, 0xff, 0xff, 0xff, 0, 0, 0, 0}, 4 - 16, true, true},
		{"pcrel udata4", []byte{1, 0x13, 0x03, 0x3b, 0x10, 0, 0, 0, 0, 0, 0, 0}, 4 + 16, true, true},
		{"absptr", []byte{1, 0x00, 0x03, 0x3b, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0, 0}, 0x334455667788, false, true},
		{"udata8", []byte{1, 0x04, 0x03, 0x3b, 8, 0, 0, 0, 0, 0, 0, 0}, 8, false, true},
		{"version 2", []byte{2, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, false},
		{"datarel", []byte{1, 0x3b, 0x03, 0x3b, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, false},
		{"uleb128", []byte{1, 0x01, 0x03, 0x3b, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, len(tc.hdr))
			copy(buf, tc.hdr)
			hdr := uintptr(unsafe.Pointer(&buf[0]))
			got, ok := ehFramePtr(hdr)
			runtime.KeepAlive(buf)
			want := uintptr(tc.want)
			if tc.pcrel {
				want += hdr
			}
			if ok != tc.ok || (ok && got != want) {
				t.Errorf("ehFramePtr = %#x, %v; want %#x, %v", got, ok, want, tc.ok)
			}
		})
	}
}

// TestParseTLS compares Parse's PT_TLS and PT_GNU_EH_FRAME of the
// gcc-built fixtures with debug/elf's program headers.
func TestParseTLS(t *testing.T) {
	for _, name := range []string{"libfx_tlsmodels.so", "libfx_tlsuse.so", "libfx_tls.so", "libfx_relocs.so"} {
		p := fxPath(t, name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(p, data)
		if err != nil {
			t.Fatal(err)
		}
		ef, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		var tls, ehf *elf.Prog
		for _, pr := range ef.Progs {
			switch pr.Type {
			case elf.PT_TLS:
				tls = pr
			case elf.PT_GNU_EH_FRAME:
				ehf = pr
			}
		}
		ef.Close()
		switch {
		case tls == nil && f.TLS != nil:
			t.Errorf("%s: Parse has TLS %+v, debug/elf none", name, *f.TLS)
		case tls != nil && (f.TLS == nil || f.TLS.Vaddr != tls.Vaddr || f.TLS.Filesz != tls.Filesz || f.TLS.Memsz != tls.Memsz || f.TLS.Align != max(tls.Align, 1)):
			t.Errorf("%s: Parse has TLS %+v, debug/elf %+v", name, f.TLS, tls.ProgHeader)
		}
		if ehf != nil && (f.EHFrameHdr.Vaddr != ehf.Vaddr || f.EHFrameHdr.Size != ehf.Memsz) {
			t.Errorf("%s: Parse has .eh_frame_hdr %+v, debug/elf %+v", name, f.EHFrameHdr, ehf.ProgHeader)
		}
	}
	if f, _ := Parse("x", mustRead(t, fxPath(t, "libfx_tlsmodels.so"))); f == nil || f.TLS == nil || f.TLS.Align != 64 || f.TLS.Filesz == 0 || f.TLS.Memsz <= f.TLS.Filesz {
		t.Errorf("libfx_tlsmodels.so: want a 64-byte aligned PT_TLS with .tdata and .tbss, got %+v", f)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
