// Package clients holds reachvm's sample clients, instrumentation tools
// written against jit.Client, each runnable with `reachvm run -c NAME
// [-o FILE] -- PROG [ARGS...]`:
//
//   - inscount counts the instructions the program executes.
//   - bbcount counts executions of each basic block.
//   - calltrace records each thread's calls and returns of the functions
//     the modules' symbol tables name, in order (jit.TraceBuffer).
//   - memtrace records every load and store (pc, address, size, read or
//     write) in a compact file (ReadMemtrace reads it back).
//   - opcodes counts the instructions executed by mnemonic.
//   - wrap wraps the C library's malloc, calloc, realloc and free
//     (jit.Client.Wrap) and reports the allocations and the leaks.
//
// Each is a few lines of the API a tool writer starts from: a
// translation-time event (jit.Client.Block) decides what code to insert,
// and the inserted code, not Go, runs per execution.
//
// It also runs native clients: shared libraries written in C or C++
// against include/reachvm.h, which LoadNative (and New, given a path,
// `reachvm run -c ./client.so`) loads privately into the vmcode of the
// machine they instrument, so that the code cache reaches their cells and
// functions with rel32 displacements. Their events are plain calls from
// Go into the library with structs of the header's, which Go mirrors;
// nothing calls back into Go. docs/clients.md walks through writing
// both kinds. linux/amd64 only.
package clients
