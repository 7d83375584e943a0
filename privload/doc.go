// Package privload is reachvm's private loader: it maps client libraries
// into vmcode slots, so that code emitted into the code cache reaches them
// with plain rel32 calls, and relocates, links and initialises them itself,
// without the system dynamic linker, which would place them anywhere.
//
// DynamoRIO's core/unix/loader.c and gVisor's pkg/sentry/loader are the
// models.
//
// # Parsing
//
// Parse is strict and portable (it is fuzzed on any OS). It works from the
// ELF header, the program headers and PT_DYNAMIC, as a loader must:
// debug/elf reads dynamic information from section headers, which a
// stripped or hostile file need not have, or may make lie. Every offset,
// size and count is checked against the file with overflow checks; both
// hash tables are verified (every exported symbol is findable, no chain
// loops); the symbol version tables (DT_VERSYM, DT_VERDEF, DT_VERNEED)
// are decoded and every version index checked; every relocation must
// land in a writable segment. Anything malformed or unsupported is a
// *FormatError naming the file and the reason, of class ErrMalformed,
// ErrUnsupported or (from the loader) ErrLink. PT_TLS (at most one,
// its image in the file-backed part of a PT_LOAD, its block at most 16
// MiB) and PT_GNU_EH_FRAME are decoded for the loader. Executables
// (ET_EXEC, PT_INTERP), text relocations (DT_TEXTREL, DF_TEXTREL) and
// executable stacks are refused: a
// PT_GNU_STACK with PF_X, and no PT_GNU_STACK at all, which glibc takes
// as the same request.
//
// # Loading (Linux)
//
// Load loads a library with its dependencies, in phases, so that whatever
// can refuse a library does so before anything is mapped:
//
//  1. Find, read and parse the library and, breadth-first, each
//     DT_NEEDED entry. A system library (Options.System; by default the
//     parts of glibc) is opened by the host's own dlopen, as DynamoRIO
//     leaves libraries outside its reach to the system loader: a private
//     libc would need its own heap, thread-local storage and start-up.
//     Any other is private: found as ld.so finds it (see Finding
//     libraries) and loaded into a vmcode slot of its own. Each private
//     library is checked: relocation types (RELATIVE, 64, GLOB_DAT,
//     JUMP_SLOT, IRELATIVE, DTPMOD64, DTPOFF64, TLSDESC; COPY, the
//     initial-exec TPOFF64 and TPOFF32 and anything else are refused with
//     their names), text relocations, the stack it asks for.
//  2. Reserve a slot per private library, and if any has PT_TLS, set up
//     the group's thread-local storage (see below).
//  3. Bind every symbol reference. The search is ld.so's for a library
//     opened with dlopen: Options.Imports first (a redirection table: any
//     symbol can be bound to the caller's address), then the loaded
//     library, then its dependencies breadth-first in DT_NEEDED order,
//     host libraries in their place in that order (dlsym, or dlvsym for a
//     versioned reference, on the host's handle; a library built with
//     DT_SYMBOLIC searches itself first), then Options.Resolve; an
//     undefined weak reference binds to 0, any other fails the load. A
//     reference versioned foo@V binds only to a definition of V (or an
//     unversioned one); an unversioned reference takes glibc's choice
//     (the unversioned or oldest definition, else the one default
//     version), as check_match in glibc's elf/dl-lookup.c. Lookups go
//     through DT_GNU_HASH (DT_HASH if there is none): a Bloom filter
//     probe, a bucket and one short chain, O(1).
//  4. Map each library's PT_LOADs with MAP_FIXED over its slot's
//     reservation at their final protections (consecutive segments laid
//     out as in memory with one mmap), zero the .bss, apply RELR, DT_RELA
//     and DT_JMPREL (all bound now, lazy-binding libraries too), and last
//     the relocations that call ifunc resolvers (IRELATIVE, references to
//     STT_GNU_IFUNC symbols; resolvers get no arguments, as from glibc on
//     x86-64); then make PT_GNU_RELRO read-only. Dependencies are
//     relocated before the libraries that need them, so a resolver runs
//     in a relocated library.
//  5. Register every library's unwind tables with the group's private
//     libgcc_s, if it has one, then run DT_INIT, then DT_INIT_ARRAY,
//     each library after its dependencies (unless Options.SkipInit).
//
// # Finding libraries
//
// Load takes a name as dlopen does, and finds each DT_NEEDED entry as
// glibc's ld.so does (_dl_map_object in glibc's elf/dl-load.c; ld.so(8)).
// A name containing a slash is a path, relative to the current directory
// ($ORIGIN and the other tokens expanded in a DT_NEEDED entry). A bare
// name ("libz.so.1") is looked for, in this order, in:
//
//  1. the DT_RPATH directories of the library that needs it, then of the
//     library that brought that one in, and so on up to the root; not if
//     the library that needs it has a DT_RUNPATH;
//  2. the directories of LD_LIBRARY_PATH (colon- or semicolon-separated),
//     unless the process is secure (AT_SECURE: set-user-ID, set-group-ID
//     or given capabilities), whose environment must not choose what it
//     loads;
//  3. Options.SearchPath, privload's own addition: the caller's
//     directories, searched like LD_LIBRARY_PATH, secure or not;
//  4. the DT_RUNPATH directories of the library that needs it, for its
//     own DT_NEEDED entries only;
//  5. /etc/ld.so.cache, as ldconfig writes it (entries for this machine:
//     x86-64 libc6 ones, glibc-hwcaps subdirectory ones for the levels
//     the CPU supports): read once per process and again when the file
//     changes;
//  6. the system directories: on Debian and its derivatives
//     /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib and
//     /usr/lib (ld.so --help lists them), elsewhere /lib64 and
//     /usr/lib64.
//
// The name given to Load has no loader, so its search starts at 2: Load
// of "libz.so.1" loads the file ldconfig -p names. A library linked with
// -z nodefaultlib (DF_1_NODEFLIB) has its dependencies searched in
// neither the system directories nor the cache entries that lie there.
// In DT_RPATH, DT_RUNPATH and LD_LIBRARY_PATH an empty element is the
// current directory; $ORIGIN (or ${ORIGIN}) is the directory of the path
// the library was found by (of the executable, in LD_LIBRARY_PATH), $LIB
// the system library directory ("lib/x86_64-linux-gnu" on Debian) and
// $PLATFORM the machine ("x86_64"); an element with a token ld.so does
// not know is skipped, as ld.so skips it, and a secure process skips
// relative elements and those using $ORIGIN. The error of a name found
// nowhere lists every place looked in, in order, and where each came
// from.
//
// In each directory, the glibc-hwcaps subdirectories for the levels the
// CPU supports (glibc-hwcaps/x86-64-v3/, ...) are tried first, best
// first, as glibc tries them.
//
// A file of another ELF class or machine is passed over, as ld.so passes
// over it; anything else wrong with the file found ends the search with
// its error. As with ld.so, a dependency is not looked for next to the
// library that needs it unless that library says so (-rpath '$ORIGIN').
//
// Where privload differs from glibc: it reads LD_LIBRARY_PATH at each
// Load (glibc reads it once, at start-up); it does not look in the legacy
// hwcap subdirectories (tls/, x86_64/) that glibc 2.36 still tries and
// 2.37 dropped; and it does not read the calling executable's DT_RPATH
// for the root.
//
// Library.Close of the loaded library unloads the whole group: the
// finalisers (DT_FINI_ARRAY in reverse, then DT_FINI) in the reverse order
// of the initialisers, then every slot back to vmcode. On any failure of
// Load every slot is released: nothing stays mapped and aspacem still
// matches the kernel. Errors name the file, the library that needed it and
// the library being loaded.
//
// Loading the same file again skips parsing: parsed files are cached by
// identity and used only if the bytes parsing read, read again, are the
// same, so a hit is exactly a parse (a file rewritten in place is parsed
// again). Only the parts of a file parsing needs are read (the tables in
// the first PT_LOAD and the dynamic segment: about 15% of a library).
//
// # Calling in
//
// Func.Call0 to Func.Call6 (integers and pointers as uintptr, no
// allocation; Func.Call for up to 14), Bind0 to Bind6 (typed Go functions
// of integers, bools, floats and unsafe.Pointers, converted without
// reflection), Func.Invoke (any mix of integer, pointer and
// floating-point arguments, as the System V ABI places them, with stack
// arguments) and Func.Bind (any signature purego supports, through
// reflection) enter native code through runtime.cgocall, as cgo does, so
// that the garbage collector and the scheduler go on while it runs. See
// BenchmarkCallVsCgo for their costs against cgo's. Each call of a
// library's function checks that the library is open (one atomic load)
// and fails with ErrClosed after Close.
//
// The pointer rule, for these calls and for package jit's: a pointer
// written in the call's argument list, as uintptr(unsafe.Pointer(p)) to
// a CallK, Call or jit function, as an unsafe.Pointer to a typed binding,
// or through Ptr to Invoke, stays alive and in place until the call
// returns. The compiler sees to it (the entry points are
// //go:uintptrescapes, or make their pointer arguments escape): what such
// a pointer points to is allocated on the heap, where it does not move,
// even if the call runs Go code that grows the goroutine's stack (a
// callback, or jit's translator). A pointer that reaches the native code
// any other way (stored in memory it reads, or kept by it after the call)
// is the caller's to keep alive and on the heap, and memory passed must
// hold no Go pointers, as with cgo.
//
// # Thread-local storage
//
// Private code runs with the host's thread pointer: FS stays the calling
// thread's C library thread control block, because the host's libc,
// which private libraries call (malloc, errno, locales, the stack guard
// at fs:0x28), keeps its own per-thread state there. Switching FS to a
// private TCB for a private call, as DynamoRIO does for private
// libraries that bring their own libc, would hand the host's libc
// someone else's state. So private modules get dynamic TLS, which needs
// no place relative to FS: the general-dynamic and local-dynamic models,
// which is what compilers emit for shared objects by default (libstdc++
// uses nothing else), through __tls_get_addr or through TLS descriptors
// (-mtls-dialect=gnu2).
//
// Each library with PT_TLS has a module id in its group; DTPMOD64 and
// DTPOFF64 are resolved against the library defining the variable (which
// must be a private library of the same load); __tls_get_addr binds to
// privload's own, a few instructions in a page of vmcode per group
// (Import.How BoundRuntime), and TLSDESC relocations to its descriptor
// function, in the same page, which returns the variable's address minus
// the host's thread pointer and preserves every other register, vector
// ones included (its slow path saves them with xsave). Both find the
// calling thread's blocks with the
// host's pthread_getspecific under a key of the group's; a thread's first
// access makes its blocks of every module of the group at once, from the
// VMM's vmheap (.tdata copied, .tbss zero), in a callback into Go. Any OS
// thread may call in, Go's or one the library started; nothing is
// switched on a call, so a call into a library with TLS costs what any
// other call costs, and code that calls private code (jit's clean calls
// among it) needs nothing of privload but to run it with the host's FS, as
// the host's libc requires anyway. A signal arriving during a private
// call finds FS as Go left it. Library.TLSBlock returns the calling
// thread's block of a library (making it if need be);
// Library.FreeThreadTLS gives a thread's blocks back, which a thread that
// called in should do before it exits: otherwise they stay in vmheap until
// Close, which frees every thread's blocks, the key and the page. See
// BenchmarkTLS for the costs against the host's dynamic linker.
//
// The initial-exec and local-exec models (TPOFF64, TPOFF32) put a module
// at a fixed offset from the thread pointer in every thread, inside the
// host libc's static TLS area, which only the host's dynamic linker can
// allocate: they are refused with their relocation named, as is a
// reference to a host library's thread-local variable (its block is the
// host's). Local-exec cannot appear in a shared object at all: the static
// linker refuses it.
//
// # Exceptions and unwinding
//
// libgcc's unwinder finds the unwind tables of a PC among the objects
// registered with __register_frame_info, then through the host's
// _dl_find_object, which knows only what the host's dynamic linker
// loaded. Load registers the .eh_frame of every library of a group with
// the group's private libgcc_s (the unwinder its libstdc++ binds to)
// before any initialiser runs, and Close deregisters them after the
// finalisers: a C++ exception thrown and caught in private code unwinds.
// One that escapes a call from Go reaches the Go frame, which has no
// unwind tables, and std::terminate aborts the process, as it would in
// cgo.
//
// # Not supported
//
// Initial-exec thread-local storage (see above): with
// the references to programs' symbols of plugins, the main reason system
// libraries are still refused (TestSweepSystemLibraries).
// Initialisers run with argc 0 and empty argv and envp. A thread_local
// object with a destructor registers it with the host's libc
// (__cxa_thread_atexit_impl), which runs it when the thread exits: the
// library must still be loaded then.
package privload
