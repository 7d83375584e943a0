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
// loops); every relocation must land in a writable segment. Anything
// malformed or unsupported is a *FormatError naming the file and the
// reason, of class ErrMalformed or ErrUnsupported. Executables (ET_EXEC,
// PT_INTERP), thread-local storage (PT_TLS) and text relocations
// (DT_TEXTREL, DF_TEXTREL) are refused.
//
// # Loading (Linux)
//
// Load reserves a vmm slot for the image's whole span, maps each PT_LOAD
// into it copy-on-write, zeroes and commits the .bss, applies DT_RELR,
// DT_RELA and DT_JMPREL (R_X86_64_RELATIVE, R_X86_64_64, R_X86_64_GLOB_DAT
// and R_X86_64_JUMP_SLOT, bound at once; any other type fails the load
// with its name), makes PT_GNU_RELRO read-only, sets the segments' final
// protections and runs DT_INIT and DT_INIT_ARRAY through purego.
// Symbols bind to the library's own definitions, then to Options.Resolve;
// DT_NEEDED libraries are not loaded (yet). On failure the slot is
// released: nothing stays mapped and aspacem still matches the kernel.
package privload
