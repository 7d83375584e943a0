// Package privload is reachvm's private loader: it maps client libraries
// into vmcode slots, so that code emitted into the code cache reaches them
// with plain rel32 calls, and relocates, links and initialises them itself,
// without the system dynamic linker, which would place them anywhere.
//
// DynamoRIO's core/unix/loader.c and gVisor's pkg/sentry/loader are the
// models. The parser (Parse) is strict and portable: it works from the ELF
// header, the program headers and PT_DYNAMIC, as a loader must (debug/elf
// reads dynamic information from section headers, which a stripped or
// hostile file need not have or may make lie), checks every offset, size
// and count against the file, and answers anything malformed with a
// *FormatError naming the file and the reason. Loading (Load) is Linux
// only.
package privload
