// Package clients holds reachvm's sample clients, instrumentation tools
// written against jit.Client, each runnable with `reachvm run -c NAME
// [-o FILE] -- PROG [ARGS...]`:
//
//   - inscount counts the instructions the program executes.
//   - bbcount counts executions of each basic block.
//   - opcodes counts the instructions executed by mnemonic.
//
// Each is a few lines of the API a tool writer starts from: a
// translation-time event (jit.Client.Block) decides what code to insert,
// and the inserted code, not Go, runs per execution. linux/amd64 only.
package clients
