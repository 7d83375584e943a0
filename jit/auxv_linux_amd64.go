package jit

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawmem"
)

// The auxiliary vector a program starts with.
//
// The kernel's create_elf_tables writes it under argv and envp; ld.so and
// libc read it for the program's own layout (AT_PHDR, AT_ENTRY, AT_BASE),
// for what the machine has (AT_HWCAP, AT_HWCAP2, AT_MINSIGSTKSZ,
// AT_PLATFORM, AT_RSEQ_*), for the process's credentials (AT_UID ...,
// AT_SECURE) and for the vDSO (AT_SYSINFO_EHDR). A program under reachvm
// gets the vector reachvm itself got from the kernel, in the kernel's
// order, with the entries about the executable replaced by its own, the
// pointers to strings and bytes pointing into its own stack, and entries
// whose meaning reachvm does not know left out (a pointer into reachvm's
// stack would be one).

// Auxiliary vector types (<linux/auxvec.h>, <asm/auxvec.h>).
const (
	atNull            = 0
	atPhdr            = 3
	atPhent           = 4
	atPhnum           = 5
	atPagesz          = 6
	atBase            = 7
	atFlags           = 8
	atEntry           = 9
	atUID             = 11
	atEUID            = 12
	atGID             = 13
	atEGID            = 14
	atPlatform        = 15
	atHwcap           = 16
	atClktck          = 17
	atSecure          = 23
	atBasePlatform    = 24
	atRandom          = 25
	atHwcap2          = 26
	atRseqFeatureSize = 27
	atRseqAlign       = 28
	atHwcap3          = 29
	atHwcap4          = 30
	atExecfn          = 31
	atSysinfoEhdr     = 33
	atMinsigstksz     = 51
)

// hostAuxv is the auxiliary vector the kernel gave reachvm, or, if the
// runtime does not have it, one made of what can be found otherwise.
var hostAuxv = sync.OnceValue(func() [][2]uintptr {
	if a, err := unix.Auxv(); err == nil && len(a) != 0 {
		return a
	}
	_, _, _, edx := cpuid(1, 0)
	return [][2]uintptr{
		{atHwcap, uintptr(edx)}, {atPagesz, 4096}, {atClktck, 100}, {atPhdr, 0}, {atPhent, 56},
		{atPhnum, 0}, {atBase, 0}, {atFlags, 0}, {atEntry, 0},
		{atUID, uintptr(os.Getuid())}, {atEUID, uintptr(os.Geteuid())},
		{atGID, uintptr(os.Getgid())}, {atEGID, uintptr(os.Getegid())},
		{atSecure, 0}, {atRandom, 0}, {atExecfn, 0}, {atPlatform, 0},
	}
})

// hostVDSO is the address of reachvm's own vDSO (its AT_SYSINFO_EHDR),
// 0 if the kernel gave it none.
func hostVDSO() uintptr {
	for _, kv := range hostAuxv() {
		if kv[0] == atSysinfoEhdr {
			return kv[1]
		}
	}
	return 0
}

// auxStrings are the addresses on the program's stack that the vector
// points to.
type auxStrings struct {
	// execfn, platform and basePlatform are NUL-terminated strings
	// (basePlatform 0 if the host vector has none), random 16 bytes.
	execfn, platform, basePlatform, random uintptr
}

// auxv returns the program's auxiliary vector, AT_NULL last, given where
// its strings lie on its stack.
//
// Preconditions: p is loaded.
func (p *Program) auxv(s auxStrings) [][2]uint64 {
	host := hostAuxv()
	out := make([][2]uint64, 0, len(host)+2)
	for _, kv := range host {
		t, v := kv[0], uint64(kv[1])
		switch t {
		case atNull:
			continue
		case atPhdr:
			v = uint64(p.phdr)
		case atPhent:
			v = 56
		case atPhnum:
			v = uint64(p.phnum)
		case atBase:
			v = uint64(p.interpBias)
		case atEntry:
			v = uint64(p.entry)
		case atFlags:
			// AT_FLAGS_PRESERVE_ARGV0 belongs to a binfmt_misc
			// interpreter's start, not to this one.
			v = 0
		case atRandom:
			v = uint64(s.random)
		case atExecfn:
			v = uint64(s.execfn)
		case atPlatform:
			v = uint64(s.platform)
		case atBasePlatform:
			if s.basePlatform == 0 {
				continue
			}
			v = uint64(s.basePlatform)
		case atSysinfoEhdr:
			if p.m.opts.NoVDSO {
				continue
			}
		case atPagesz, atClktck, atUID, atEUID, atGID, atEGID, atSecure, atHwcap, atHwcap2,
			atHwcap3, atHwcap4, atMinsigstksz, atRseqFeatureSize, atRseqAlign:
			// The machine's and the process's, as they are.
		default:
			// AT_EXECFD, AT_NOTELF, and whatever comes later: not
			// known to be true of the program, or pointing into
			// reachvm's own memory.
			continue
		}
		out = append(out, [2]uint64{uint64(t), v})
	}
	return append(out, [2]uint64{atNull, 0})
}

// hostString returns the NUL-terminated string the host vector's entry t
// points to, and whether there is one.
func hostString(t uintptr) (string, bool) {
	for _, kv := range hostAuxv() {
		if kv[0] == t && kv[1] != 0 {
			var b []byte
			for a := kv[1]; len(b) < 256; a++ {
				c := rawmem.Bytes(a, 1)[0]
				if c == 0 {
					return string(b), true
				}
				b = append(b, c)
			}
		}
	}
	return "", false
}
