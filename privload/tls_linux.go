//go:build linux

package privload

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/cpu"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Thread-local storage of private libraries.
//
// Private code runs with the host's thread pointer: FS is the calling
// thread's own C library thread control block, as it is for cgo, because
// the host's libc (which private libraries bind to, Options.System) keeps
// its own per-thread state there (errno, the malloc caches, the locale,
// the stack guard at fs:0x28, the thread's descriptor) and would find
// someone else's if FS pointed at a private TCB for the duration of a
// private call. So, unlike DynamoRIO, whose private libraries bring a
// private libc along, privload gives private modules dynamic TLS only,
// the general-dynamic and local-dynamic models:
//
//   - each library with PT_TLS gets a module id within its group
//     (1, 2, ...; a group is what one Load brought in), which
//     R_X86_64_DTPMOD64 writes, and R_X86_64_DTPOFF64 the variable's
//     offset within its module's block;
//   - references to __tls_get_addr bind to privload's own, a few
//     instructions of machine code in a page of vmcode per group
//     (tlsStubCode), which finds the calling thread's dynamic thread
//     vector (DTV) with the host's pthread_getspecific under a key of the
//     group's, and returns dtv[module] + offset;
//   - a thread's first call finds no DTV and takes the slow path, a Go
//     callback (tlsSlow) that allocates the thread's blocks of every
//     module of the group at once, from the VMM's vmheap, copies each
//     module's .tdata into its block and zeroes its .tbss, and sets the
//     key. Every later access is the fast path: no lock, no system call.
//
// The initial-exec and local-exec models (R_X86_64_TPOFF64, TPOFF32 and
// code that adds a link-time constant to %fs:0) need the module's block
// at a fixed offset from the thread pointer in every thread, that is, in
// the host C library's static TLS area, which only the host's dynamic
// linker allocates; they are refused with their relocation named, as are
// references to a host library's thread-local variables. TLS descriptors
// (R_X86_64_TLSDESC, -mtls-dialect=gnu2) are supported: their function,
// also in the stub page, returns the dynamic block's address minus the
// host's thread pointer, which the code adds back (tlsDescCode).
//
// Since private code needs no FS of its own, code that calls private
// code (jit's clean calls from the code cache among it) only has to run
// it with the host's FS, as it must for the host's libc anyway.
//
// A thread's blocks live until the group is closed or the thread gives
// them back (Library.FreeThreadTLS); a thread that exits without doing so
// leaves them in vmheap until the group's Close.

// tlsDTVHead is the number of words before the block pointers of a DTV:
// word 0 is the number of modules n; words 1..n are the blocks of modules
// 1..n.
const tlsDTVHead = 1

// tlsModule is one library of a group with PT_TLS.
type tlsModule struct {
	// image is the address of the module's .tdata in the mapped
	// library, filesz its size, memsz the block's size, align its
	// alignment (a power of two, at most a page). Set at reserve time,
	// immutable after.
	image                uintptr
	filesz, memsz, align uintptr
	// off is the block's offset in a thread's chunk (aligned to align
	// relative to the chunk's aligned start).
	off uintptr
}

// tlsGroup is the thread-local storage of one group of libraries.
type tlsGroup struct {
	v *vmm.VMM
	// token names the group to the slow path (tlsGroups); the stub
	// passes it. Immutable.
	token uintptr
	// key is the group's host pthread key, whose value in a thread is
	// that thread's DTV (0: none yet). Immutable.
	key uint32
	// stub is the slot of the machine code page, getAddr its
	// __tls_get_addr. Immutable.
	stub    *vmm.Slot
	getAddr uintptr
	// descAddr is the TLS descriptor function in the stub page.
	// Immutable.
	descAddr uintptr
	// descIdx is the vmheap array of tls_index {module, offset} the
	// group's TLSDESC relocations point their descriptors' arguments
	// at, nDesc entries, of which descUsed are taken (by relocation,
	// during Load only).
	descIdx         uintptr
	nDesc, descUsed int
	// mods are the modules by id-1. Immutable after newTLSGroup.
	mods []tlsModule
	// chunk is the size of one thread's allocation (DTV, then the
	// blocks) and align its alignment: the largest module alignment.
	chunk, align uintptr

	mu sync.Mutex
	// threads maps each thread's DTV to the vmheap allocation holding
	// it (the DTV is aligned up within it). Guarded by mu.
	threads map[uintptr]uintptr
	// closed is set by close; the slow path then refuses. Guarded by mu.
	closed bool
}

// tlsHost holds the host functions and the Go callback the stub uses,
// found once per process.
var tlsHost struct {
	once                                   sync.Once
	err                                    error
	keyCreate, keyDelete, getSpec, setSpec uintptr
	slow                                   uintptr
}

var (
	tlsGroupsMu sync.Mutex
	// tlsGroups maps a token to its live group.
	tlsGroups = map[uintptr]*tlsGroup{}
	tlsTokens atomic.Uintptr
	// tlsSlowCalls counts slow-path calls, for tests.
	tlsSlowCalls atomic.Int64
)

// tlsInit finds the host's pthread key functions and makes the slow
// path's callback.
func tlsInit() error {
	h := &tlsHost
	h.once.Do(func() {
		lib, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			h.err = fmt.Errorf("opening the host's libc: %w", err)
			return
		}
		for _, s := range []struct {
			p    *uintptr
			name string
		}{{&h.keyCreate, "pthread_key_create"}, {&h.keyDelete, "pthread_key_delete"}, {&h.getSpec, "pthread_getspecific"}, {&h.setSpec, "pthread_setspecific"}} {
			a, err := purego.Dlsym(lib, s.name)
			if err != nil || a == 0 {
				h.err = fmt.Errorf("the host's libc has no %s", s.name)
				return
			}
			*s.p = a
		}
		h.slow = purego.NewCallback(tlsSlow)
	})
	return h.err
}

// tlsStubCode returns the machine code of a group's __tls_get_addr, which
// privload's test checks against objdump's disassembly:
//
//	push rbp; mov rbp, rsp; and rsp, -16     ; callers may misalign
//	push rdi; push rdi                       ; keep ti, stay aligned
//	mov edi, key; mov rax, getspecific; call rax
//	pop rdi; pop rdi
//	test rax, rax; je slow                   ; no DTV yet
//	mov rcx, [rdi]; dec rcx; cmp rcx, [rax]; jae slow   ; id-1 < n
//	mov rax, [rax+rcx*8+8]; add rax, [rdi+8] ; block + offset
//	leave; ret
//	slow: mov rsi, token; mov rax, callback; call rax; leave; ret
//
// ti (rdi) points to a tls_index {module, offset}, as glibc's.
func tlsStubCode(key uint32, getSpec, token, slow uintptr) []byte {
	b := []byte{
		0x55,             // push rbp
		0x48, 0x89, 0xe5, // mov rbp, rsp
		0x48, 0x83, 0xe4, 0xf0, // and rsp, -16
		0x57, 0x57, // push rdi; push rdi
		0xbf, 0, 0, 0, 0, // mov edi, key
		0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rax, getspecific
		0xff, 0xd0, // call rax
		0x5f, 0x5f, // pop rdi; pop rdi
		0x48, 0x85, 0xc0, // test rax, rax
		0x74, 0x16, // je slow
		0x48, 0x8b, 0x0f, // mov rcx, [rdi]
		0x48, 0xff, 0xc9, // dec rcx
		0x48, 0x3b, 0x08, // cmp rcx, [rax]
		0x73, 0x0b, // jae slow
		0x48, 0x8b, 0x44, 0xc8, 0x08, // mov rax, [rax+rcx*8+8]
		0x48, 0x03, 0x47, 0x08, // add rax, [rdi+8]
		0xc9, 0xc3, // leave; ret
		// slow:
		0x48, 0xbe, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rsi, token
		0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, // movabs rax, callback
		0xff, 0xd0, // call rax
		0xc9, 0xc3, // leave; ret
	}
	binary.LittleEndian.PutUint32(b[11:], key)
	binary.LittleEndian.PutUint64(b[17:], uint64(getSpec))
	binary.LittleEndian.PutUint64(b[58:], uint64(token))
	binary.LittleEndian.PutUint64(b[68:], uint64(slow))
	return b
}

// tlsSlowOffset is where the stub's slow path starts.
const tlsSlowOffset = 56

// tlsDescOffset is where the TLS descriptor function (tlsDescCode) lies in
// the stub page, after __tls_get_addr.
const tlsDescOffset = 0x80

// tlsDescCode returns the machine code of a group's TLS descriptor
// function, which R_X86_64_TLSDESC binds (-mtls-dialect=gnu2): called with
// rax pointing to the descriptor {function, argument}, whose argument
// points to a tls_index {module, offset}, it returns in rax the variable's
// address minus the thread pointer (%fs:0, the host's), and preserves
// every other register, as the descriptor ABI requires. The fast path is
// __tls_get_addr's (pthread_getspecific, which in glibc touches general
// registers only); the slow path, a call into Go, saves and restores the
// x87, SSE, AVX and AVX-512 state with xsave first (4 KiB of stack; the
// standard-format area of those components ends at 2688 bytes; its
// header, which xrstor checks, is zeroed before). privload's test checks
// it against objdump.
func tlsDescCode(key uint32, getSpec, token, slow uintptr) []byte {
	b := []byte{
		0x55,             // 0x0: push rbp
		0x48, 0x89, 0xe5, // 0x1: mov rbp,rsp
		0x53,       // 0x4: push rbx
		0x57,       // 0x5: push rdi
		0x56,       // 0x6: push rsi
		0x52,       // 0x7: push rdx
		0x51,       // 0x8: push rcx
		0x41, 0x50, // 0x9: push r8
		0x41, 0x51, // 0xb: push r9
		0x41, 0x52, // 0xd: push r10
		0x41, 0x53, // 0xf: push r11
		0x48, 0x83, 0xe4, 0xc0, // 0x11: and rsp,0xffffffffffffffc0
		0x48, 0x8b, 0x58, 0x08, // 0x15: mov rbx,QWORD PTR [rax+0x8]
		0xbf, 0x44, 0x33, 0x22, 0x11, // 0x19: mov edi,0x11223344
		0x48, 0xb8, 0x44, 0x33, 0x22, 0x11, 0x00, 0x7f, 0x00, 0x00, // 0x1e: movabs rax,0x7f0011223344
		0xff, 0xd0, // 0x28: call rax
		0x48, 0x85, 0xc0, // 0x2a: test rax,rax
		0x74, 0x30, // 0x2d: je 5f
		0x48, 0x8b, 0x0b, // 0x2f: mov rcx,QWORD PTR [rbx]
		0x48, 0xff, 0xc9, // 0x32: dec rcx
		0x48, 0x3b, 0x08, // 0x35: cmp rcx,QWORD PTR [rax]
		0x73, 0x25, // 0x38: jae 5f
		0x48, 0x8b, 0x44, 0xc8, 0x08, // 0x3a: mov rax,QWORD PTR [rax+rcx*8+0x8]
		0x48, 0x03, 0x43, 0x08, // 0x3f: add rax,QWORD PTR [rbx+0x8]
		0x64, 0x48, 0x2b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00, // 0x43: sub rax,QWORD PTR fs:0x0
		0x48, 0x8d, 0x65, 0xb8, // 0x4c: lea rsp,[rbp-0x48]
		0x41, 0x5b, // 0x50: pop r11
		0x41, 0x5a, // 0x52: pop r10
		0x41, 0x59, // 0x54: pop r9
		0x41, 0x58, // 0x56: pop r8
		0x59,                                     // 0x58: pop rcx
		0x5a,                                     // 0x59: pop rdx
		0x5e,                                     // 0x5a: pop rsi
		0x5f,                                     // 0x5b: pop rdi
		0x5b,                                     // 0x5c: pop rbx
		0xc9,                                     // 0x5d: leave
		0xc3,                                     // 0x5e: ret
		0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00, // 0x5f: sub rsp,0x1000
		0x48, 0xc7, 0x84, 0x24, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x66: mov QWORD PTR [rsp+0x200],0x0
		0x48, 0xc7, 0x84, 0x24, 0x08, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x72: mov QWORD PTR [rsp+0x208],0x0
		0x48, 0xc7, 0x84, 0x24, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x7e: mov QWORD PTR [rsp+0x210],0x0
		0x48, 0xc7, 0x84, 0x24, 0x18, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x8a: mov QWORD PTR [rsp+0x218],0x0
		0x48, 0xc7, 0x84, 0x24, 0x20, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0x96: mov QWORD PTR [rsp+0x220],0x0
		0x48, 0xc7, 0x84, 0x24, 0x28, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0xa2: mov QWORD PTR [rsp+0x228],0x0
		0x48, 0xc7, 0x84, 0x24, 0x30, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0xae: mov QWORD PTR [rsp+0x230],0x0
		0x48, 0xc7, 0x84, 0x24, 0x38, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0xba: mov QWORD PTR [rsp+0x238],0x0
		0xb8, 0xe7, 0x00, 0x00, 0x00, // 0xc6: mov eax,0xe7
		0x31, 0xd2, // 0xcb: xor edx,edx
		0x0f, 0xae, 0x24, 0x24, // 0xcd: xsave [rsp]
		0x48, 0x89, 0xdf, // 0xd1: mov rdi,rbx
		0x48, 0xbe, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0xd4: movabs rsi,0x55
		0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x00, 0x7f, 0x00, 0x00, // 0xde: movabs rax,0x7f0055667788
		0xff, 0xd0, // 0xe8: call rax
		0x48, 0x89, 0xc3, // 0xea: mov rbx,rax
		0xb8, 0xe7, 0x00, 0x00, 0x00, // 0xed: mov eax,0xe7
		0x31, 0xd2, // 0xf2: xor edx,edx
		0x0f, 0xae, 0x2c, 0x24, // 0xf4: xrstor [rsp]
		0x48, 0x89, 0xd8, // 0xf8: mov rax,rbx
		0xe9, 0x43, 0xff, 0xff, 0xff, // 0xfb: jmp 43
	}
	binary.LittleEndian.PutUint32(b[0x1a:], key)
	binary.LittleEndian.PutUint64(b[0x20:], uint64(getSpec))
	binary.LittleEndian.PutUint64(b[0xd6:], uint64(token))
	binary.LittleEndian.PutUint64(b[0xe0:], uint64(slow))
	return b
}

// tlsDescOK reports whether the descriptor function can run here: its
// slow path needs xsave, enabled by the kernel (OSXSAVE).
func tlsDescOK() bool { return cpu.X86.HasOSXSAVE }

// setupTLS gives every private library of the load with PT_TLS a module
// id and, if there is any, makes the group's TLS: a pthread key and the
// stub page. It runs once the slots are reserved (the images' addresses
// are known) and before binding (which binds __tls_get_addr to the stub).
func (ld *elfLoader) setupTLS() error {
	var mods []tlsModule
	for _, img := range ld.imgs {
		t := img.lib.file.TLS
		if t == nil {
			continue
		}
		mods = append(mods, tlsModule{image: img.lib.bias + uintptr(t.Vaddr), filesz: uintptr(t.Filesz), memsz: uintptr(t.Memsz), align: uintptr(t.Align)})
		img.lib.tlsID = uint64(len(mods))
	}
	if len(mods) == 0 {
		return nil
	}
	who := ld.imgs[0].who
	if _, size := ld.v.VMHeap(); size == 0 {
		return unsupportedf(who, "thread-local storage needs the VMM's vmheap for the threads' blocks, and it has none")
	}
	if err := tlsInit(); err != nil {
		return errorf(who, "thread-local storage: %v", err)
	}
	g := &tlsGroup{v: ld.v, mods: mods, threads: map[uintptr]uintptr{}, align: 16}
	for _, img := range ld.imgs {
		for _, tab := range [2][]Reloc{img.lib.file.Rela, img.lib.file.PLTRela} {
			for _, r := range tab {
				if r.Type == elf.R_X86_64_TLSDESC {
					g.nDesc++
				}
			}
		}
	}
	off := uintptr(tlsDTVHead+len(mods)) * 8
	for i := range g.mods {
		m := &g.mods[i]
		g.align = max(g.align, m.align)
		off = (off + m.align - 1) &^ (m.align - 1)
		m.off = off
		off += m.memsz
	}
	g.chunk = max(off, 8)
	var key uint32
	if r := native.Call2(tlsHost.keyCreate, uintptr(unsafe.Pointer(&key)), 0); r != 0 {
		return errorf(who, "thread-local storage: the host's pthread_key_create failed (error %d)", int32(r))
	}
	g.key = key
	pg := ld.page
	slot, err := ld.v.ReserveSlot(pg, "privlib tls "+ld.imgs[0].lib.name)
	if err != nil {
		native.Call1(tlsHost.keyDelete, uintptr(key))
		return errorf(who, "reserving a page of vmcode for __tls_get_addr: %w", err)
	}
	g.stub, g.getAddr = slot, slot.Base()
	g.token = tlsTokens.Add(1)
	code := tlsStubCode(key, tlsHost.getSpec, g.token, tlsHost.slow)
	if err := slot.Commit(slot.Base(), pg, mem.ProtRW); err != nil {
		g.free()
		return errorf(who, "committing the __tls_get_addr page: %w", err)
	}
	page := rawmem.Bytes(slot.Base(), pg)
	copy(page, code)
	copy(page[tlsDescOffset:], tlsDescCode(key, tlsHost.getSpec, g.token, tlsHost.slow))
	g.descAddr = slot.Base() + tlsDescOffset
	if g.nDesc > 0 {
		if g.descIdx, err = ld.v.Alloc(uintptr(g.nDesc) * 16); err != nil {
			g.free()
			return errorf(who, "allocating %d TLS descriptors' arguments: %w", g.nDesc, err)
		}
	}
	if err := slot.Protect(slot.Base(), pg, mem.ProtRX); err != nil {
		g.free()
		return errorf(who, "protecting the __tls_get_addr page: %w", err)
	}
	tlsGroupsMu.Lock()
	tlsGroups[g.token] = g
	tlsGroupsMu.Unlock()
	ld.tls = g
	return nil
}

// tlsSlow is the stub's slow path, called on the thread that asked: it
// makes the thread's blocks of the group token names and returns the
// address ti asks for. It returns 0 (the access then faults in the
// library, as a bad pointer would) for a group closed meanwhile, a module
// id the group does not have, or vmheap exhausted.
func tlsSlow(ti, token uintptr) uintptr {
	tlsSlowCalls.Add(1)
	tlsGroupsMu.Lock()
	g := tlsGroups[token]
	tlsGroupsMu.Unlock()
	if g == nil {
		return 0
	}
	w := rawmem.Bytes(ti, 16)
	id, off := binary.LittleEndian.Uint64(w), uintptr(binary.LittleEndian.Uint64(w[8:]))
	if id == 0 || id > uint64(len(g.mods)) {
		return 0
	}
	dtv, err := g.thread()
	if err != nil {
		return 0
	}
	return g.block(dtv, int(id)) + off
}

// block returns the block of module id in the DTV at dtv.
func (g *tlsGroup) block(dtv uintptr, id int) uintptr {
	return uintptr(binary.LittleEndian.Uint64(rawmem.Bytes(dtv+uintptr(tlsDTVHead+id-1)*8, 8)))
}

// thread returns the calling thread's DTV, making it and the thread's
// blocks if it has none.
//
// Preconditions: the calling goroutine is locked to its OS thread (a
// callback from native code is).
func (g *tlsGroup) thread() (uintptr, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, fmt.Errorf("%w: its thread-local storage is freed", ErrClosed)
	}
	if dtv := native.Call1(tlsHost.getSpec, uintptr(g.key)); dtv != 0 {
		return dtv, nil
	}
	raw, err := g.v.Alloc(g.chunk + g.align)
	if err != nil {
		return 0, fmt.Errorf("privload: allocating a thread's %d-byte thread-local blocks: %w", g.chunk, err)
	}
	dtv := (raw + g.align - 1) &^ (g.align - 1)
	b := rawmem.Bytes(dtv, g.chunk)
	binary.LittleEndian.PutUint64(b, uint64(len(g.mods)))
	for i, m := range g.mods {
		binary.LittleEndian.PutUint64(b[(tlsDTVHead+i)*8:], uint64(dtv+m.off))
		// vmheap memory comes zeroed: the .tbss is.
		if m.filesz > 0 {
			copy(b[m.off:m.off+m.filesz], rawmem.Bytes(m.image, m.filesz))
		}
	}
	if r := native.Call2(tlsHost.setSpec, uintptr(g.key), dtv); r != 0 {
		_ = g.v.Free(raw)
		return 0, fmt.Errorf("privload: the host's pthread_setspecific failed (error %d)", int32(r))
	}
	g.threads[dtv] = raw
	return dtv, nil
}

// freeThread gives back the calling thread's blocks, if it has any.
//
// Preconditions: the calling goroutine is locked to its OS thread, and no
// code of the group runs on it.
func (g *tlsGroup) freeThread() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	dtv := native.Call1(tlsHost.getSpec, uintptr(g.key))
	if dtv == 0 {
		return nil
	}
	raw, ok := g.threads[dtv]
	if !ok {
		return fmt.Errorf("privload: the thread's thread-local vector %#x is not the group's", dtv)
	}
	native.Call2(tlsHost.setSpec, uintptr(g.key), 0)
	delete(g.threads, dtv)
	return g.v.Free(raw)
}

// free releases everything of the group: the key (other threads' values
// of it become unreachable: glibc's pthread_getspecific checks the key's
// sequence number), every thread's blocks, the stub's page.
func (g *tlsGroup) free() error {
	tlsGroupsMu.Lock()
	delete(tlsGroups, g.token)
	tlsGroupsMu.Unlock()
	g.mu.Lock()
	g.closed = true
	threads := g.threads
	g.threads = nil
	g.mu.Unlock()
	var errs []error
	native.Call1(tlsHost.keyDelete, uintptr(g.key))
	for _, raw := range threads {
		if err := g.v.Free(raw); err != nil && !errors.Is(err, vmm.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if g.descIdx != 0 {
		if err := g.v.Free(g.descIdx); err != nil && !errors.Is(err, vmm.ErrClosed) {
			errs = append(errs, err)
		}
		g.descIdx = 0
	}
	if g.stub != nil {
		if err := g.stub.Release(); err != nil {
			errs = append(errs, fmt.Errorf("privload: releasing the __tls_get_addr page: %w", err))
		}
		g.stub = nil
	}
	return errors.Join(errs...)
}

// TLSBlock returns the calling OS thread's block of the library's
// thread-local storage (its PT_TLS), making the thread's blocks of the
// library's group if it has none yet, as the library's first access from
// the thread would. The address of a thread-local variable of the library
// at offset off of its PT_TLS (a symbol's value) is block + off. It fails
// for a library without PT_TLS and after Close.
//
// Preconditions: the calling goroutine is locked to its OS thread
// (runtime.LockOSThread); the block is that thread's.
func (l *Library) TLSBlock() (uintptr, error) {
	if l.closed.Load() {
		return 0, fmt.Errorf("%w: %s", ErrClosed, l.path)
	}
	g := l.tlsGroup()
	if g == nil || l.tlsID == 0 {
		return 0, fmt.Errorf("privload: %s has no thread-local storage", l.path)
	}
	dtv, err := g.thread()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", l.path, err)
	}
	return g.block(dtv, int(l.tlsID)), nil
}

// FreeThreadTLS gives back the calling OS thread's thread-local blocks of
// the library's group, if it has any; a later access from the thread
// makes fresh ones, with initial values. A thread that calls into the
// group and then exits should call it first, or its blocks stay in vmheap
// until Close.
//
// Preconditions: the calling goroutine is locked to its OS thread, and no
// code of the group is running on it (no pointer to its blocks is in use).
func (l *Library) FreeThreadTLS() error {
	g := l.tlsGroup()
	if g == nil {
		return nil
	}
	return g.freeThread()
}

// tlsGroup returns the group's thread-local storage, or nil.
func (l *Library) tlsGroup() *tlsGroup {
	if l.group == nil {
		return nil
	}
	return l.group.tls
}

// tlsThreads returns how many threads have blocks of the group, for
// tests.
func (l *Library) tlsThreads() int {
	g := l.tlsGroup()
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.threads)
}
