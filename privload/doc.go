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
// ErrUnsupported or (from the loader) ErrLink. Executables (ET_EXEC,
// PT_INTERP), thread-local storage (PT_TLS), text relocations
// (DT_TEXTREL, DF_TEXTREL) and executable stacks are refused.
//
// # Loading (Linux)
//
// Load loads a library with its dependencies, in phases, so that whatever
// can refuse a library does so before anything is mapped:
//
//  1. Read and parse the library and, breadth-first, each DT_NEEDED
//     entry. A system library (Options.System; by default the parts of
//     glibc) is opened by the host's own dlopen, as DynamoRIO leaves
//     libraries outside its reach to the system loader: a private libc
//     would need its own heap, thread-local storage and start-up. Any
//     other is private: found next to the library that needs it, then on
//     its DT_RUNPATH (or DT_RPATH, with $ORIGIN), then on
//     Options.SearchPath, and loaded into a vmcode slot of its own. Each
//     private library is checked: relocation types (RELATIVE, 64,
//     GLOB_DAT, JUMP_SLOT, IRELATIVE; COPY, TLS and anything else are
//     refused with their names), thread-local storage, text relocations.
//  2. Reserve a slot per private library.
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
//  5. Run DT_INIT, then DT_INIT_ARRAY, each library after its
//     dependencies (unless Options.SkipInit).
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
// Func.Call (integers, pointers), Func.Invoke (any mix of integer,
// pointer and floating-point arguments, as the System V ABI places them,
// with stack arguments) and Func.Bind (a typed Go function through
// purego) enter native code through runtime.cgocall, as cgo does, so that
// the garbage collector and the scheduler go on while it runs. See
// BenchmarkCall for their costs.
//
// # Not supported
//
// Thread-local storage (PT_TLS, TLS relocations) is refused: it needs
// blocks in every thread's TCB, which only the host's dynamic linker can
// allocate. This is the main reason system libraries are refused (see the
// sweep test, TestSweepSystemLibraries): libstdc++ and several common
// libraries have it. Initialisers run with argc 0 and empty argv and envp.
// A C++ exception thrown in a private library finds no unwind tables
// (dl_iterate_phdr does not know private images).
package privload
