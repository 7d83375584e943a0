package jit

// cpuid, xgetbv and fxsave are in cpu_amd64.s.
func cpuid(eaxIn, ecxIn uint32) (eax, ebx, ecx, edx uint32)
func xgetbv() (eax, edx uint32)

// fxsave stores the x87 and SSE state in the 512 bytes at area.
//
// Preconditions: area is 16-byte aligned, 512 bytes long.
//
//go:noescape
func fxsave(area *byte)

// vectorState says how the context switch saves the application's x87,
// SSE, AVX and AVX-512 state: XSAVE with every component the OS enabled
// (XCR0), or FXSAVE (x87 and SSE only) where XSAVE is not enabled.
type vectorState struct {
	// xsave is set when the processor and OS support XSAVE.
	xsave bool
	// size is the save area's size in bytes for the enabled components
	// (CPUID.(EAX=0DH,ECX=0):EBX), 512 for FXSAVE.
	size uint32
	// xcr0 is the enabled component bitmap.
	xcr0 uint64
	// avx is set when the OS enabled the AVX state (XCR0 bits 1 and 2):
	// the context switch then clears the upper halves on the way out.
	avx bool
}

func detectVectorState() vectorState {
	_, _, ecx, _ := cpuid(1, 0)
	const osxsave = 1 << 27
	if ecx&osxsave == 0 {
		return vectorState{size: 512}
	}
	lo, hi := xgetbv()
	xcr0 := uint64(hi)<<32 | uint64(lo)
	_, ebx, _, _ := cpuid(0xd, 0)
	return vectorState{xsave: true, size: ebx, xcr0: xcr0, avx: xcr0&6 == 6}
}

// userStateMask is the XSAVE components compiled application code uses:
// x87, SSE, AVX, and AVX-512's opmask, ZMM_Hi256 and Hi16_ZMM. AMX tiles
// (bits 17 and 18) are left out: no compiler emits them unasked, and
// their 8 KiB would be saved on every exit.
const userStateMask = 0xe7

// mask returns the components the context switch saves and restores.
func (vs vectorState) mask() uint64 { return vs.xcr0 & userStateMask }
