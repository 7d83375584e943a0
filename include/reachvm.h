/*
 * reachvm.h: the interface of a native reachvm client.
 *
 * A native client is a shared library that reachvm loads privately into
 * vmcode (package privload), next to the code cache, and runs with
 *
 *     reachvm run -c ./client.so [CLIENT-ARGS...] -- PROG [ARGS...]
 *
 * It exports one function, reachvm_client_init, which fills a struct
 * rv_client with its event functions. reachvm calls them from Go with
 * plain C calls; nothing here calls back into Go. What a block event
 * wants inserted into the translated code it records in the struct
 * rv_block it is given (rv_insert_add, rv_insert_clean_call), and the
 * functions a module_load event wraps in the module's wrap table
 * (rv_wrap): reachvm reads the records when the event returns. What a
 * client would ask Go (a module's symbols) it is given whole, to search
 * with the helpers here (rv_module_symbol, rv_module_lookup).
 *
 * This header is the whole interface: plain structs, whose layout Go
 * mirrors (clients/native_linux_amd64.go; TestNativeLayout checks the
 * two agree), and static inline helpers. It needs no C library: a client
 * can be built freestanding,
 *
 *     gcc -O2 -fPIC -shared -nostdlib -ffreestanding -fno-stack-protector \
 *         -mgeneral-regs-only -I include -o client.so client.c
 *
 * (-mgeneral-regs-only: clean calls must keep the vector registers), and
 * print with rv_write, rv_printf and rv_dprintf, which make the write
 * system call themselves. A client linked with the C library (gcc -fPIC
 * -shared) gets the host process's copy of it (privload binds glibc to
 * the host's own), usable from the events, which run in reachvm's Go
 * code on the event's thread; a clean call is better kept to plain code
 * (see rv_insert_clean_call).
 *
 * docs/clients.md walks through writing one. linux/amd64 only.
 */
#ifndef REACHVM_H
#define REACHVM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RV_API_VERSION is the version of this interface. reachvm fills
 * rv_client.version with the version it implements and rv_client.size
 * with the struct's size as it knows it; a client built against a newer
 * header than the reachvm running it sees a smaller size, and should
 * refuse to run (return nonzero from reachvm_client_init) if it needs
 * the events past it, which that reachvm does not call. */
#define RV_API_VERSION 2

/* What each version added. A client that uses them checks version is at
 * least the one that brought them: an older reachvm neither fills nor
 * reads them.
 *
 * 2: the module's functions (rv_module's nsyms, syms, nnames, names;
 *    rv_module_symbol, rv_module_lookup), the block's module
 *    (rv_block.module), and function wrapping (rv_module.wraps, rv_wrap,
 *    struct rv_wrapcall). */

/* The application's general registers, as rv_arg_reg names them: the
 * hardware's numbers (jit.Reg's). */
enum rv_reg {
	RV_RAX = 0, RV_RCX, RV_RDX, RV_RBX, RV_RSP, RV_RBP, RV_RSI, RV_RDI,
	RV_R8, RV_R9, RV_R10, RV_R11, RV_R12, RV_R13, RV_R14, RV_R15,
};

/* struct rv_thread is an application thread. The same struct is passed
 * to every event of the thread, from its thread_start to its
 * thread_exit, and stays at its address all that time. */
struct rv_thread {
	/* tid is the thread's id (gettid). */
	int32_t tid;
	int32_t reserved;
	/* data is the client's own: NULL at thread_start, kept for the
	 * thread's life. Only events of the thread touch it. */
	void *data;
};

/* Flags of struct rv_memref. */
enum rv_memref_flags {
	RV_MEM_READ = 1,      /* the memory is read */
	RV_MEM_WRITE = 2,     /* the memory is written (both: add [m], r) */
	RV_MEM_IMPLICIT = 4,  /* no operand names it: push's [rsp-8], a string instruction's [rsi] */
	RV_MEM_RIP = 8,       /* RIP-relative: disp is the address itself */
	RV_MEM_ADDR_ONLY = 16, /* an address computed, not accessed (lea, prefetch) */
	RV_MEM_ADDR32 = 32,   /* an address-size prefix: the address is 32 bits */
	RV_MEM_REPEAT = 64,   /* a rep-prefixed string instruction's: accessed rcx times */
};

/* Segments of struct rv_memref. */
enum rv_memref_seg {
	RV_SEG_NONE = 0,
	RV_SEG_FS = 1,
	RV_SEG_GS = 2,
};

/* RV_NO_REG is rv_memref's base or index when there is none. */
#define RV_NO_REG 255

/* struct rv_memref is a memory location an instruction accesses (or
 * whose address it computes): base + index * scale + disp, plus the
 * segment's base, the registers as they are before the instruction.
 * rv_insert_record_ref records its address. */
struct rv_memref {
	/* disp is the displacement, or with RV_MEM_RIP the address. */
	int64_t disp;
	/* size is the number of bytes accessed (0 with RV_MEM_ADDR_ONLY). */
	uint32_t size;
	/* flags are enum rv_memref_flags. */
	uint16_t flags;
	/* seg is an enum rv_memref_seg. */
	uint8_t seg;
	/* scale is 1, 2, 4 or 8 with an index, else 0. */
	uint8_t scale;
	/* base and index are enum rv_reg numbers, or RV_NO_REG. */
	uint8_t base, index;
	uint8_t reserved[6];
};

/* struct rv_instr is one application instruction of a block. */
struct rv_instr {
	/* pc is the instruction's application address. */
	uint64_t pc;
	/* bytes are its len bytes, in the application's memory: read only,
	 * and only during the event. */
	const uint8_t *bytes;
	/* len is its length in bytes, 1 to 15. */
	uint32_t len;
	/* is_control is 1 for an instruction that transfers control (a
	 * branch, call, return, system call or trap), else 0: only a
	 * block's last instruction may be one. */
	uint32_t is_control;
	/* mnemonic is the instruction's lower-case Intel mnemonic ("add",
	 * "vpaddd", "rep movsb"), or NULL for the few the decoder cannot
	 * name; the string lives as long as the process. */
	const char *mnemonic;
	/* has_mem is 1 if the instruction has an explicit memory operand
	 * whose address rv_arg_ea and rv_insert_record_ea compute (a ModRM
	 * memory operand, not GS-relative, without a vector index; lea's
	 * too, which reads no memory), else 0. */
	uint32_t has_mem;
	/* nmems are the memory references the decoder found, mems[0:nmems]
	 * (the explicit operand's first, then the implicit ones), valid
	 * during the event only; 0 for an instruction it does not cover. */
	uint32_t nmems;
	const struct rv_memref *mems;
};

/* The kinds of clean-call argument. */
enum rv_arg_kind {
	RV_ARG_CONST = 1, /* value */
	RV_ARG_REG = 2,   /* the register reg's value before the instruction */
	RV_ARG_PC = 3,    /* the instruction's application address */
	RV_ARG_EA = 4,    /* its memory operand's effective address */
	RV_ARG_CONTEXT = 5, /* a struct rv_context * of the application's registers */
};

/* struct rv_context is the application's registers before the
 * instruction, as a clean call given rv_arg_context() sees them: it may
 * change them, and the application goes on with what it leaves (except
 * the trap flag in rflags). */
struct rv_context {
	/* regs are rax..r15, indexed by enum rv_reg. */
	uint64_t regs[16];
	uint64_t rflags;
};

/* struct rv_arg is a clean-call argument (rv_arg_const and the others
 * make them). */
struct rv_arg {
	uint32_t kind;
	uint32_t reg;
	int64_t value;
};

/* The kinds of insertion. */
enum rv_insert_kind {
	RV_INSERT_ADD = 1,
	RV_INSERT_CLEAN_CALL = 2,
	RV_INSERT_RECORD_EA = 3,   /* a trace record of the memory operand's address */
	RV_INSERT_RECORD_ADDR = 4, /* a trace record of a register plus a displacement */
	RV_INSERT_RECORD_REF = 5,  /* a trace record of a memory reference's address */
};

/* struct rv_trace_record is one record of the client's trace buffer, as
 * its trace event gets them. */
struct rv_trace_record {
	/* addr is the address recorded; tag the insertion's tag. */
	uint64_t addr;
	uint32_t tag;
	uint32_t extra; /* 0 */
};

/* Insertion flags. */
enum rv_insert_flags {
	RV_LOCKED = 1, /* an add is atomic (lock add) */
	RV_VECTOR = 2, /* a clean call keeps the vector state around it */
};

/* RV_MAX_ARGS is the most arguments a clean call takes: those the
 * System V ABI passes in registers. */
#define RV_MAX_ARGS 6

/* struct rv_insert is one insertion a block event records (with
 * rv_insert_add or rv_insert_clean_call, which check it). */
struct rv_insert {
	/* kind is an enum rv_insert_kind. */
	uint32_t kind;
	/* at is the index of the instruction the code goes before. */
	int32_t at;
	/* target is the cell (RV_INSERT_ADD) or the function
	 * (RV_INSERT_CLEAN_CALL): an address in the client's own image. */
	uint64_t target;
	/* n is what RV_INSERT_ADD adds (it fits in 32 bits), or a record's
	 * tag (32 bits, unsigned). */
	int64_t n;
	/* flags are enum rv_insert_flags: RV_LOCKED for an add,
	 * RV_VECTOR for a clean call. */
	uint32_t flags;
	/* nargs are the clean call's arguments, args[0:nargs];
	 * RV_INSERT_RECORD_ADDR's base register and displacement are its
	 * one argument, of kind RV_ARG_REG. */
	uint32_t nargs;
	struct rv_arg args[RV_MAX_ARGS];
};

/* Values of rv_block.error and rv_wrap_table.error, and what the helpers
 * return. */
enum rv_block_error {
	RV_OK = 0,
	RV_ERR_FULL = 1,  /* more insertions than inserts_cap */
	RV_ERR_INDEX = 2, /* an instruction index out of [0, n) */
	RV_ERR_ARGS = 3,  /* a bad argument count or kind */
	RV_ERR_VALUE = 4, /* an add that does not fit in 32 bits */
	RV_ERR_NULL = 5,  /* a NULL pointer where one is needed */
	RV_ERR_NOT_FOUND = 6, /* no function of the name, or at the address */
	RV_ERR_EVENT = 7, /* not here: a wrap outside module_load, a wrap helper in the other hook */
};

struct rv_module;

/* struct rv_block is a basic block as the translator builds it: the
 * straight-line code from pc up to and including its first control
 * transfer, or the translator's limit. It may be given to the block
 * event more than once for the same code (for another thread, after a
 * flush): each time, what the event inserts applies to the translation
 * being made. */
struct rv_block {
	/* pc is the address of the block's first instruction. */
	uint64_t pc;
	/* n is the number of instructions, at least 1; instrs[0:n] are
	 * they, valid during the event only. */
	int32_t n;
	/* ninserts are the insertions made so far, inserts[0:ninserts];
	 * inserts_cap is the room in inserts. */
	uint32_t ninserts;
	uint32_t inserts_cap;
	/* error is the first failed insertion's enum rv_block_error, which
	 * fails the translation, and so the run, with its reason. */
	int32_t error;
	struct rv_instr *instrs;
	struct rv_insert *inserts;
	/* thread is the thread the block is translated for: what is
	 * inserted runs on that thread only. */
	struct rv_thread *thread;
	/* module is the module holding pc, the struct module_load was
	 * given, or NULL: for code in no file (the vDSO, code the
	 * application made), and for a client without a module_load or
	 * module_unload event, for which reachvm does not follow modules.
	 * Since version 2. */
	const struct rv_module *module;
};

/* struct rv_syscall is a system call, as syscall_pre and syscall_post
 * see it. */
struct rv_syscall {
	struct rv_thread *thread;
	/* nr is the call's number; args its six arguments (rdi, rsi, rdx,
	 * r10, r8, r9). syscall_pre may change both: the call made is the
	 * changed one. */
	uint64_t nr;
	uint64_t args[6];
	/* result is the call's result (a negated errno on failure), valid
	 * in syscall_post, which may change it; with skip, what the
	 * application sees. */
	uint64_t result;
	/* skip, set to 1 by syscall_pre, makes the call not happen: the
	 * application sees result. Not for exit and exit_group. */
	int32_t skip;
	int32_t reserved;
};

/* struct rv_symbol is a function of a module's symbol tables (.symtab
 * and .dynsym: a library stripped of its .symtab has its exported
 * functions only). */
struct rv_symbol {
	/* name is its name, NUL-terminated. */
	const char *name;
	/* start is its address, loaded. */
	uint64_t start;
	/* end, in rv_module.syms, ends the addresses it holds: those of
	 * [start, end) are its (its size, or up to the next function's
	 * start for one of unknown size). 0 in rv_module.names. */
	uint64_t end;
};

struct rv_wrapcall;

/* struct rv_wrap is one function wrapped, as rv_wrap records it. */
struct rv_wrap {
	/* func is the function's address: its first instruction. */
	uint64_t func;
	/* pre and post are the hooks (see rv_wrap), either NULL. */
	void (*pre)(struct rv_wrapcall *w);
	void (*post)(struct rv_wrapcall *w);
};

/* struct rv_wrap_table is the room for the wraps a module_load event
 * makes (with rv_wrap, which checks them): wraps[0:n], room for cap,
 * error the first failed wrap's enum rv_block_error, which fails the
 * run. */
struct rv_wrap_table {
	uint32_t n;
	uint32_t cap;
	int32_t error;
	int32_t reserved;
	struct rv_wrap *wraps;
};

/* struct rv_module is a file of application code (the executable, its
 * interpreter, a library the program maps), as module_load and
 * module_unload see it. One struct stands for the module from its
 * module_load until its module_unload returns (or the run's end): the
 * same pointer in both events and in rv_block.module, with its path and
 * symbols. Since version 2; in version 1 the struct was the event's
 * only. */
struct rv_module {
	/* path is the file's path as the kernel shows it, NUL-terminated. */
	const char *path;
	/* base is the address of the file's first mapping, from which its
	 * offsets count (a shared object's load bias); end the end of the
	 * mappings that follow base without a gap. */
	uint64_t base;
	uint64_t end;
	/* syms are the module's functions, syms[0:nsyms], by start
	 * ascending, one per address (the first name of several: a global's
	 * before a local's, then the larger); names are every name of
	 * every function, names[0:nnames], by name in byte order (strcmp),
	 * malloc and __libc_malloc both. rv_module_symbol and
	 * rv_module_lookup search them. Both empty for a module without a
	 * symbol table, or a file reachvm cannot read. Since version 2. */
	uint32_t nsyms;
	uint32_t nnames;
	const struct rv_symbol *syms;
	const struct rv_symbol *names;
	/* wraps is where module_load's rv_wrap records the functions it
	 * wraps; NULL in module_unload and in rv_block.module. Since
	 * version 2. */
	struct rv_wrap_table *wraps;
};

/* struct rv_wrapcall is one call of a wrapped function, as its hooks
 * see it (rv_wrap). It is valid during the hook only; data carries what
 * the pre hook wants its post hook to have. */
struct rv_wrapcall {
	struct rv_thread *thread;
	/* func is the wrapped function; retaddr where the call returns
	 * to. */
	uint64_t func;
	uint64_t retaddr;
	/* args are the call's six integer arguments (rdi, rsi, rdx, rcx,
	 * r8, r9). In the pre hook they are what the function is about to
	 * get, and changing them (rv_wrap_set_arg) changes what it gets; in
	 * the post hook, what it got, read only. */
	uint64_t args[6];
	/* retval is the call's integer result (rax), in the post hook,
	 * which may change it (rv_wrap_set_retval); in the pre hook, with
	 * skip, what the caller gets. */
	uint64_t retval;
	/* data is the hooks' own: NULL in the pre hook, and what the pre
	 * hook left in the post hook of the same call. */
	void *data;
	/* skip, set to 1 by the pre hook (rv_wrap_skip), skips the
	 * function: the caller gets retval at once, and the post hook is
	 * not called. */
	int32_t skip;
	/* unwound is 1 in a post hook for a call whose frame was left
	 * without a return (a longjmp past it, an exception): retval means
	 * nothing, and a change to it is ignored. DynamoRIO's drwrap calls
	 * such a post hook with a NULL context. */
	int32_t unwound;
	/* post is 0 in the pre hook, 1 in the post hook. */
	int32_t post;
	int32_t reserved;
};

/* struct rv_signal is a signal about to be delivered to the application
 * (its handler run or its default action taken), as the signal event
 * sees it. */
struct rv_signal {
	struct rv_thread *thread;
	/* signo, code and addr are the siginfo's si_signo, si_code and
	 * si_addr (the faulting address of SIGSEGV and SIGBUS). */
	int32_t signo;
	int32_t code;
	uint64_t addr;
	/* pc is the application's instruction the signal comes at: the
	 * faulting one if fault is 1 (a synchronous signal it raised). */
	uint64_t pc;
	int32_t fault;
	/* suppress, set to 1 by the event, drops the signal: an
	 * asynchronous one is not delivered; a fault's instruction runs
	 * again (and faults again unless the client changed why). */
	int32_t suppress;
	/* siginfo is the whole siginfo_t, 128 bytes, read only. */
	const uint8_t *siginfo;
};

/* struct rv_exit is the end of the program's run. */
struct rv_exit {
	/* status is the program's exit status (128+N for a fatal signal
	 * N). */
	int32_t status;
	/* fd is where the client's report goes: reachvm's standard error,
	 * or the file run's -o names. It is reachvm's: write to it, do not
	 * close it. */
	int32_t fd;
	/* error says why the run ended other than by an exit (a fatal
	 * signal), NUL-terminated, or is NULL. */
	const char *error;
};

/* struct rv_client is what reachvm_client_init fills: the client's
 * events, each optional (NULL costs nothing). reachvm fills version and
 * size before the call. */
struct rv_client {
	/* version is RV_API_VERSION of the reachvm running the client;
	 * size is sizeof(struct rv_client) as it knows it. */
	uint32_t version;
	uint32_t size;
	/* name names the client in reachvm's messages (a static string), or
	 * is NULL for the file's name. */
	const char *name;
	/* block is called when the translator builds a basic block: it may
	 * insert code before any of b's instructions. */
	void (*block)(struct rv_block *b);
	/* thread_start is called when a thread starts, before its first
	 * instruction; thread_exit when it ends. */
	void (*thread_start)(struct rv_thread *t);
	void (*thread_exit)(struct rv_thread *t);
	/* syscall_pre is called before each system call, syscall_post
	 * after each one made that returns to the application. */
	void (*syscall_pre)(struct rv_syscall *s);
	void (*syscall_post)(struct rv_syscall *s);
	/* exit is called once, when the run has ended, after every
	 * thread_exit: the place to write the client's report, to e->fd. */
	void (*exit)(const struct rv_exit *e);
	/* module_load is called once for each module before its first
	 * block is translated (before any of its code runs under reachvm),
	 * module_unload when the application unmaps the module's first
	 * mapping; one at a time for the whole program. module_load is
	 * where a client finds the module's functions (rv_module_lookup)
	 * and wraps them (rv_wrap). */
	void (*module_load)(const struct rv_module *m);
	void (*module_unload)(const struct rv_module *m);
	/* signal is called before a signal is delivered to the
	 * application; it may suppress it. */
	void (*signal)(struct rv_signal *s);
	/* trace is given the records the code inserted by
	 * rv_insert_record_ea and rv_insert_record_addr made on thread t,
	 * recs[0:n], in order: when the thread's buffer (4095 records,
	 * of which up to 16 may be left unused: a block's run of records
	 * takes its room at once) fills, and the rest when the thread
	 * exits. The records are valid
	 * during the event only. A client that records must have it. */
	void (*trace)(struct rv_thread *t, const struct rv_trace_record *recs, size_t n);
};

/* reachvm_client_init is the client's entry point: it fills c with its
 * events, given its arguments (those after -c FILE, up to --; argv[0] is
 * the client's path). It returns 0 to run, anything else to fail the
 * run, with the code in reachvm's message. */
int reachvm_client_init(struct rv_client *c, int argc, const char **argv);

/* rv_arg_const is an argument of value v. */
static inline struct rv_arg rv_arg_const(int64_t v)
{
	struct rv_arg a = {RV_ARG_CONST, 0, v};
	return a;
}

/* rv_arg_reg is the application's register r as it is before the
 * instruction. */
static inline struct rv_arg rv_arg_reg(enum rv_reg r)
{
	struct rv_arg a = {RV_ARG_REG, (uint32_t)r, 0};
	return a;
}

/* rv_arg_pc is the instruction's application address. */
static inline struct rv_arg rv_arg_pc(void)
{
	struct rv_arg a = {RV_ARG_PC, 0, 0};
	return a;
}

/* rv_arg_ea is the effective address of the instruction's memory
 * operand (an instruction without one fails the translation). */
static inline struct rv_arg rv_arg_ea(void)
{
	struct rv_arg a = {RV_ARG_EA, 0, 0};
	return a;
}

/* rv_arg_context is a pointer to the application's registers (struct
 * rv_context), which the function may change: all of them are saved and
 * restored around such a call. */
static inline struct rv_arg rv_arg_context(void)
{
	struct rv_arg a = {RV_ARG_CONTEXT, 0, 0};
	return a;
}

/* rv_block_fail records err in b unless an error is there already, and
 * returns NULL. */
static inline struct rv_insert *rv_block_fail(struct rv_block *b, int32_t err)
{
	if (b->error == RV_OK)
		b->error = err;
	return NULL;
}

/* rv_insert_new returns the next insertion record of b, before
 * instruction idx, cleared, or NULL (with b->error set) if idx is out of
 * range or b is full. The record is made (counted in b->ninserts) by
 * the caller once it is filled in and checked. */
static inline struct rv_insert *rv_insert_new(struct rv_block *b, int idx, uint32_t kind)
{
	struct rv_insert *in;
	uint32_t i;

	if (b->error != RV_OK)
		return NULL;
	if (idx < 0 || idx >= b->n)
		return rv_block_fail(b, RV_ERR_INDEX);
	if (b->ninserts >= b->inserts_cap)
		return rv_block_fail(b, RV_ERR_FULL);
	in = &b->inserts[b->ninserts];
	in->kind = kind;
	in->at = idx;
	in->target = 0;
	in->n = 0;
	in->flags = 0;
	in->nargs = 0;
	for (i = 0; i < RV_MAX_ARGS; i++) {
		in->args[i].kind = 0;
		in->args[i].reg = 0;
		in->args[i].value = 0;
	}
	return in;
}

/* rv_insert_add inserts, before instruction idx of b, code that adds n
 * to the 64-bit cell, atomically if locked. The cell must be in the
 * client's image (its .data or .bss), which lies within a rel32 of the
 * code cache: the add is one instruction addressing it RIP-relatively.
 * n must fit in 32 bits. It returns 0, or the error recorded in b. */
static inline int rv_insert_add(struct rv_block *b, int idx, uint64_t *cell, int64_t n, int locked)
{
	struct rv_insert *in;

	if (n != (int64_t)(int32_t)n) {
		rv_block_fail(b, RV_ERR_VALUE);
		return b->error;
	}
	in = rv_insert_new(b, idx, RV_INSERT_ADD);
	if (in == NULL)
		return b->error;
	in->target = (uint64_t)(uintptr_t)cell;
	in->n = n;
	in->flags = locked ? RV_LOCKED : 0;
	b->ninserts++;
	return 0;
}

/* rv_insert_clean_call_va is rv_insert_clean_call with the arguments
 * in ap and flags (0 or RV_VECTOR). */
static inline int rv_insert_clean_call_va(struct rv_block *b, int idx, void *fn, uint32_t flags, int nargs, va_list ap)
{
	struct rv_insert *in;
	int i;

	if (nargs < 0 || nargs > RV_MAX_ARGS) {
		rv_block_fail(b, RV_ERR_ARGS);
		return b->error;
	}
	in = rv_insert_new(b, idx, RV_INSERT_CLEAN_CALL);
	if (in == NULL)
		return b->error;
	in->target = (uint64_t)(uintptr_t)fn;
	in->flags = flags;
	in->nargs = (uint32_t)nargs;
	for (i = 0; i < nargs; i++) {
		uint32_t k;

		in->args[i] = va_arg(ap, struct rv_arg);
		k = in->args[i].kind;
		if (k < RV_ARG_CONST || k > RV_ARG_CONTEXT || (k == RV_ARG_REG && in->args[i].reg > RV_R15)) {
			rv_block_fail(b, RV_ERR_ARGS);
			return b->error;
		}
	}
	b->ninserts++;
	return 0;
}

/* rv_insert_clean_call inserts, before instruction idx of b, a call of
 * fn with nargs (at most RV_MAX_ARGS) arguments, each a struct rv_arg
 * (rv_arg_const, rv_arg_reg, rv_arg_pc, rv_arg_ea, rv_arg_context),
 * passed to fn as 64-bit integers, System V ABI. fn must be a function
 * of the client's image: the code cache calls it with one rel32 call.
 *
 * fn runs on the application's thread, with the application's state
 * saved around it (the registers the ABI lets fn change, the flags), on
 * a stack of reachvm's own (256 KiB), with the host's FS. It must keep
 * the vector registers (build the client with -mgeneral-regs-only, or
 * use rv_insert_clean_call_vector, which saves them, at a cost), should
 * be short, and should not block: the application's signals wait for
 * it. Threads call it at once: it keeps shared data with atomics. A
 * fault in it crashes reachvm. It returns 0, or the error recorded in
 * b. */
static inline int rv_insert_clean_call(struct rv_block *b, int idx, void *fn, int nargs, ...)
{
	va_list ap;
	int r;

	va_start(ap, nargs);
	r = rv_insert_clean_call_va(b, idx, fn, 0, nargs, ap);
	va_end(ap);
	return r;
}

/* rv_insert_clean_call_vector is rv_insert_clean_call for a function
 * that uses the vector registers (x87, SSE, AVX): the call saves and
 * restores the vector state around it (xsave). */
static inline int rv_insert_clean_call_vector(struct rv_block *b, int idx, void *fn, int nargs, ...)
{
	va_list ap;
	int r;

	va_start(ap, nargs);
	r = rv_insert_clean_call_va(b, idx, fn, RV_VECTOR, nargs, ap);
	va_end(ap);
	return r;
}

/* rv_insert_record_ea inserts, before instruction idx of b, code that
 * appends to the thread's trace buffer a record of the effective address
 * of the instruction's memory operand (as rv_arg_ea computes it) and
 * tag, without changing the application's registers or flags: no call,
 * a few instructions inline (DynamoRIO's drx_buf). The client's trace
 * event gets the records a buffer at a time. An instruction without a
 * memory operand fails the translation. */
static inline int rv_insert_record_ea(struct rv_block *b, int idx, uint32_t tag)
{
	struct rv_insert *in = rv_insert_new(b, idx, RV_INSERT_RECORD_EA);

	if (in == NULL)
		return b->error;
	in->n = tag;
	b->ninserts++;
	return 0;
}

/* rv_insert_record_addr is rv_insert_record_ea for the address
 * base+disp, base's value being the application's before the
 * instruction: for the implicit operands of push (rsp-8), pop and ret
 * (rsp), and the string instructions (rsi, rdi). */
static inline int rv_insert_record_addr(struct rv_block *b, int idx, enum rv_reg base, int32_t disp, uint32_t tag)
{
	struct rv_insert *in;

	if ((uint32_t)base > RV_R15) {
		rv_block_fail(b, RV_ERR_ARGS);
		return b->error;
	}
	in = rv_insert_new(b, idx, RV_INSERT_RECORD_ADDR);
	if (in == NULL)
		return b->error;
	in->n = tag;
	in->nargs = 1;
	in->args[0].kind = RV_ARG_REG;
	in->args[0].reg = (uint32_t)base;
	in->args[0].value = disp;
	b->ninserts++;
	return 0;
}

/* rv_insert_record_ref inserts, before instruction idx of b, code that
 * appends to the thread's trace buffer a record of the address of its
 * memory reference ref (an index into rv_instr.mems), with tag. A
 * GS-relative reference cannot be recorded (it fails the block). It
 * returns 0, or the error recorded in b. */
static inline int rv_insert_record_ref(struct rv_block *b, int idx, uint32_t ref, uint32_t tag)
{
	struct rv_insert *in = rv_insert_new(b, idx, RV_INSERT_RECORD_REF);

	if (in == NULL)
		return b->error;
	if (ref >= b->instrs[idx].nmems) {
		rv_block_fail(b, RV_ERR_ARGS);
		return b->error;
	}
	in->target = ref;
	in->n = (int64_t)tag;
	b->ninserts++;
	return 0;
}

/* rv_strcmp compares the NUL-terminated strings a and b byte by byte,
 * unsigned, as strcmp does (a freestanding client has no strcmp): <0,
 * 0 or >0. */
static inline int rv_strcmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	while (*x != 0 && *x == *y)
		x++, y++;
	return (int)*x - (int)*y;
}

/* rv_module_symbol finds the function of m holding pc (DynamoRIO's
 * drsym_lookup_address): it points *sym at its entry of m->syms and
 * returns 0; or it returns RV_ERR_NOT_FOUND, no function of m holds pc
 * (*sym NULL), or RV_ERR_NULL, m or sym is NULL. It answers as reachvm's
 * Go clients' Module.Symbol does, in O(log nsyms), and may be called
 * from any event while m is valid, and from a clean call. */
static inline int rv_module_symbol(const struct rv_module *m, uint64_t pc, const struct rv_symbol **sym)
{
	uint32_t lo = 0, hi;

	if (m == NULL || sym == NULL)
		return RV_ERR_NULL;
	*sym = NULL;
	if (m->syms == NULL)
		return RV_ERR_NOT_FOUND;
	/* lo: the first function starting past pc. */
	hi = m->nsyms;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (m->syms[mid].start > pc)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo == 0 || pc >= m->syms[lo - 1].end)
		return RV_ERR_NOT_FOUND;
	*sym = &m->syms[lo - 1];
	return RV_OK;
}

/* rv_module_lookup finds the function of m called name (DynamoRIO's
 * drsym_lookup_symbol; any of its names: malloc or __libc_malloc): it
 * sets *addr to its address and returns 0; or it returns
 * RV_ERR_NOT_FOUND, m has no function of that name (*addr 0), or
 * RV_ERR_NULL, m, name or addr is NULL. It answers as Module.Lookup
 * does, in O(log nnames). */
static inline int rv_module_lookup(const struct rv_module *m, const char *name, uint64_t *addr)
{
	uint32_t lo = 0, hi;

	if (m == NULL || name == NULL || addr == NULL)
		return RV_ERR_NULL;
	*addr = 0;
	if (m->names == NULL)
		return RV_ERR_NOT_FOUND;
	hi = m->nnames;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = rv_strcmp(m->names[mid].name, name);
		if (c == 0) {
			*addr = m->names[mid].start;
			return RV_OK;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return RV_ERR_NOT_FOUND;
}

/* rv_wrap wraps the function at func (DynamoRIO's drwrap_wrap): pre, if
 * not NULL, is called at each call's entry, before the function's first
 * instruction, and post, if not NULL, when the call returns (or is found
 * unwound, see rv_wrapcall.unwound), each with the call's struct
 * rv_wrapcall. Only module_load wraps (m is the module it is given):
 * code translated before a wrap does not call the hooks, and a module's
 * code is translated after its module_load. Wrapping a function again
 * replaces its hooks.
 *
 * The hooks are functions of the client's image. reachvm's Go code
 * calls them on the calling thread, as it calls events: threads call
 * them at once, and they may use the C library if the client links it. A
 * tail call out of the function returns through the same post hook,
 * with the final result. The function sees its return address replaced
 * while a post hook waits for it (a backtrace taken in it ends there).
 *
 * It returns 0; RV_ERR_NULL if m is NULL; RV_ERR_EVENT if m is not
 * module_load's (m->wraps NULL); or the error it recorded in m->wraps,
 * which fails the run: RV_ERR_NULL for a func of 0, RV_ERR_ARGS for
 * neither hook, RV_ERR_FULL past the table's room (one wrap for each
 * function of the module, and 64 more). After an error every later wrap
 * of the event is refused. */
static inline int rv_wrap(const struct rv_module *m, uint64_t func, void (*pre)(struct rv_wrapcall *w),
			  void (*post)(struct rv_wrapcall *w))
{
	struct rv_wrap_table *t;
	int32_t err = RV_OK;

	if (m == NULL)
		return RV_ERR_NULL;
	t = m->wraps;
	if (t == NULL)
		return RV_ERR_EVENT;
	if (t->error != RV_OK)
		return t->error;
	if (func == 0)
		err = RV_ERR_NULL;
	else if (pre == NULL && post == NULL)
		err = RV_ERR_ARGS;
	else if (t->wraps == NULL || t->n >= t->cap)
		err = RV_ERR_FULL;
	if (err != RV_OK) {
		t->error = err;
		return err;
	}
	t->wraps[t->n].func = func;
	t->wraps[t->n].pre = pre;
	t->wraps[t->n].post = post;
	t->n++;
	return RV_OK;
}

/* rv_wrap_arg sets *v to integer argument i (0 to 5) of the call and
 * returns 0, or returns RV_ERR_NULL (w or v NULL) or RV_ERR_INDEX (i out
 * of range). */
static inline int rv_wrap_arg(const struct rv_wrapcall *w, int i, uint64_t *v)
{
	if (w == NULL || v == NULL)
		return RV_ERR_NULL;
	if (i < 0 || i >= 6)
		return RV_ERR_INDEX;
	*v = w->args[i];
	return RV_OK;
}

/* rv_wrap_set_arg changes integer argument i (0 to 5) of the call to v,
 * in the pre hook: the function gets v. It returns 0, RV_ERR_NULL,
 * RV_ERR_INDEX, or RV_ERR_EVENT in the post hook. */
static inline int rv_wrap_set_arg(struct rv_wrapcall *w, int i, uint64_t v)
{
	if (w == NULL)
		return RV_ERR_NULL;
	if (i < 0 || i >= 6)
		return RV_ERR_INDEX;
	if (w->post)
		return RV_ERR_EVENT;
	w->args[i] = v;
	return RV_OK;
}

/* rv_wrap_retval sets *v to the call's result, in the post hook of a
 * call that returned, and returns 0; or returns RV_ERR_NULL, or
 * RV_ERR_EVENT in the pre hook or for an unwound call. */
static inline int rv_wrap_retval(const struct rv_wrapcall *w, uint64_t *v)
{
	if (w == NULL || v == NULL)
		return RV_ERR_NULL;
	if (!w->post || w->unwound)
		return RV_ERR_EVENT;
	*v = w->retval;
	return RV_OK;
}

/* rv_wrap_set_retval changes the call's result to v, in the post hook
 * of a call that returned: the caller gets v. It returns 0,
 * RV_ERR_NULL, or RV_ERR_EVENT (in the pre hook: rv_wrap_skip; for an
 * unwound call). */
static inline int rv_wrap_set_retval(struct rv_wrapcall *w, uint64_t v)
{
	if (w == NULL)
		return RV_ERR_NULL;
	if (!w->post || w->unwound)
		return RV_ERR_EVENT;
	w->retval = v;
	return RV_OK;
}

/* rv_wrap_skip, in the pre hook, skips the function: the caller gets v
 * as its result at once, and the post hook is not called. It returns
 * 0, RV_ERR_NULL, or RV_ERR_EVENT in the post hook. */
static inline int rv_wrap_skip(struct rv_wrapcall *w, uint64_t v)
{
	if (w == NULL)
		return RV_ERR_NULL;
	if (w->post)
		return RV_ERR_EVENT;
	w->skip = 1;
	w->retval = v;
	return RV_OK;
}

/* rv_syscall3 makes the system call nr with three arguments itself (no
 * C library). */
static inline long rv_syscall3(long nr, long a1, long a2, long a3)
{
	long r;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
			 : "rcx", "r11", "memory");
	return r;
}

/* rv_syscall4 makes system call nr with four arguments (the fourth in
 * r10, as the kernel takes it) and returns its result (-errno on an
 * error). */
static inline long rv_syscall4(long nr, long a1, long a2, long a3, long a4)
{
	long r;
	register long r10 __asm__("r10") = a4;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
			 : "rcx", "r11", "memory");
	return r;
}

/* rv_syscall6 makes system call nr with six arguments (r10, r8 and r9
 * the last three), for mmap, and returns its result (-errno on an
 * error). */
static inline long rv_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	long r;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

/* rv_write writes the n bytes at p to fd, all of them unless an error
 * stops it, and returns how many it wrote or a negated errno. */
static inline long rv_write(int fd, const void *p, size_t n)
{
	const char *s = (const char *)p;
	size_t done = 0;

	while (done < n) {
		long r = rv_syscall3(1 /* write */, fd, (long)(s + done), (long)(n - done));
		if (r == -4 /* EINTR */)
			continue;
		if (r < 0)
			return done > 0 ? (long)done : r;
		done += (size_t)r;
	}
	return (long)done;
}

/* struct rv_out is rv_vdprintf's buffer. */
struct rv_out {
	int fd;
	size_t n;
	long total;
	char buf[256];
};

static inline void rv_out_flush(struct rv_out *o)
{
	if (o->n > 0) {
		long r = rv_write(o->fd, o->buf, o->n);
		if (r > 0)
			o->total += r;
		o->n = 0;
	}
}

static inline void rv_out_byte(struct rv_out *o, char c)
{
	if (o->n == sizeof o->buf)
		rv_out_flush(o);
	o->buf[o->n++] = c;
}

static inline void rv_out_uint(struct rv_out *o, unsigned long long v, unsigned base)
{
	char d[24];
	int i = 0;

	do {
		d[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	while (i > 0)
		rv_out_byte(o, d[--i]);
}

/* rv_vdprintf formats to fd as vdprintf would, for a subset of printf's
 * conversions: %d %i %u %x with the length modifiers l and ll (%ld,
 * %lu, %llu, %llx...), %p, %s, %c and %%; no flags, widths or
 * precisions. An unknown conversion is written as it is. It returns the
 * bytes written. */
static inline long rv_vdprintf(int fd, const char *fmt, va_list ap)
{
	struct rv_out o;
	const char *s;

	o.fd = fd;
	o.n = 0;
	o.total = 0;
	for (; *fmt != '\0'; fmt++) {
		int longs = 0;
		const char *start = fmt;

		if (*fmt != '%') {
			rv_out_byte(&o, *fmt);
			continue;
		}
		fmt++;
		while (*fmt == 'l' && longs < 2) {
			longs++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			long long v = longs == 0 ? va_arg(ap, int) : longs == 1 ? va_arg(ap, long) : va_arg(ap, long long);
			unsigned long long u = (unsigned long long)v;
			if (v < 0) {
				rv_out_byte(&o, '-');
				u = -u;
			}
			rv_out_uint(&o, u, 10);
			break;
		}
		case 'u':
		case 'x': {
			unsigned long long v = longs == 0 ? va_arg(ap, unsigned) : longs == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned long long);
			rv_out_uint(&o, v, *fmt == 'u' ? 10 : 16);
			break;
		}
		case 'p':
			rv_out_byte(&o, '0');
			rv_out_byte(&o, 'x');
			rv_out_uint(&o, (uintptr_t)va_arg(ap, void *), 16);
			break;
		case 's':
			s = va_arg(ap, const char *);
			if (s == NULL)
				s = "(null)";
			for (; *s != '\0'; s++)
				rv_out_byte(&o, *s);
			break;
		case 'c':
			rv_out_byte(&o, (char)va_arg(ap, int));
			break;
		case '%':
			rv_out_byte(&o, '%');
			break;
		default:
			/* Not ours: out as written, up to the end. */
			for (s = start; s <= fmt && *s != '\0'; s++)
				rv_out_byte(&o, *s);
			if (*fmt == '\0')
				fmt--;
			break;
		}
	}
	rv_out_flush(&o);
	return o.total;
}

/* rv_dprintf formats to fd (see rv_vdprintf). */
static inline __attribute__((format(printf, 2, 3))) long rv_dprintf(int fd, const char *fmt, ...)
{
	va_list ap;
	long n;

	va_start(ap, fmt);
	n = rv_vdprintf(fd, fmt, ap);
	va_end(ap);
	return n;
}

/* rv_lock takes a spin lock, an int the client keeps (0: free), which
 * every thread's events may share: a client with no C library has no
 * mutex, and its events hold the lock for a few table updates.
 * rv_unlock frees it. */
static inline void rv_lock(int *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		__builtin_ia32_pause();
}

static inline void rv_unlock(int *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* rv_hex writes "0x..." for v into buf (at least 19 bytes), as Go's %#x
 * writes it, for reports that must equal a Go client's. */
static inline void rv_hex(char *buf, uint64_t v)
{
	char d[16];
	int n = 0;

	do {
		d[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v != 0);
	*buf++ = '0';
	*buf++ = 'x';
	while (n > 0)
		*buf++ = d[--n];
	*buf = '\0';
}

/* rv_printf formats to the standard output, descriptor 1 (see
 * rv_vdprintf). */
static inline __attribute__((format(printf, 1, 2))) long rv_printf(const char *fmt, ...)
{
	va_list ap;
	long n;

	va_start(ap, fmt);
	n = rv_vdprintf(1, fmt, ap);
	va_end(ap);
	return n;
}

/* __ehdr_start is the client's own ELF header, which the linker (GNU ld,
 * gold, lld) defines in every image whose first segment maps it. */
extern const unsigned char __ehdr_start[] __attribute__((visibility("hidden"), weak));

/* rv_eh_frame returns the start of the client's own .eh_frame (its
 * unwind tables), found through its ELF header and PT_GNU_EH_FRAME, or
 * NULL. */
static inline void *rv_eh_frame(void)
{
	const unsigned char *eh = __ehdr_start, *ph;
	uint64_t phoff, bias = 0;
	uint16_t phentsize, phnum, i;
	int found = 0;

	if (eh == NULL || eh[0] != 0x7f || eh[1] != 'E' || eh[4] != 2 /* ELFCLASS64 */)
		return NULL;
	__builtin_memcpy(&phoff, eh + 32, 8);
	__builtin_memcpy(&phentsize, eh + 54, 2);
	__builtin_memcpy(&phnum, eh + 56, 2);
	/* The load bias: the header's address less the address of the
	 * segment that maps file offset 0. */
	for (i = 0, ph = eh + phoff; i < phnum; i++, ph += phentsize) {
		uint32_t type;
		uint64_t off, vaddr;
		__builtin_memcpy(&type, ph, 4);
		__builtin_memcpy(&off, ph + 8, 8);
		__builtin_memcpy(&vaddr, ph + 16, 8);
		if (type == 1 /* PT_LOAD */ && off == 0) {
			bias = (uint64_t)(uintptr_t)eh - vaddr;
			found = 1;
			break;
		}
	}
	if (!found)
		return NULL;
	for (i = 0, ph = eh + phoff; i < phnum; i++, ph += phentsize) {
		uint32_t type;
		uint64_t vaddr;
		const unsigned char *hdr;
		int32_t rel;
		__builtin_memcpy(&type, ph, 4);
		__builtin_memcpy(&vaddr, ph + 16, 8);
		if (type != 0x6474e550 /* PT_GNU_EH_FRAME */)
			continue;
		/* .eh_frame_hdr: version 1, then eh_frame_ptr's encoding,
		 * which linkers write as pcrel|sdata4 (0x1b). */
		hdr = (const unsigned char *)(uintptr_t)(bias + vaddr);
		if (hdr[0] != 1 || hdr[1] != 0x1b)
			return NULL;
		__builtin_memcpy(&rel, hdr + 4, 4);
		return (void *)(hdr + 4 + rel);
	}
	return NULL;
}

#ifdef __cplusplus
/* The C++ runtime's registry of unwind tables (libgcc's). */
void __register_frame(void *begin);
void __deregister_frame(void *begin);

/* RV_CXX_EXCEPTIONS, written once at file scope in a C++ client, lets
 * the client throw and catch exceptions in its own code: the unwinder
 * finds a library's tables through dl_iterate_phdr, which does not know
 * a privately loaded client, so the client registers its tables itself
 * when it is loaded (and takes them back when unloaded). An exception
 * must still not leave the client's events: reachvm's Go code is below
 * them. */
#define RV_CXX_EXCEPTIONS                                                     \
	__attribute__((constructor)) static void rv_cxx_register_frame(void)   \
	{                                                                      \
		void *f = rv_eh_frame();                                       \
		if (f != NULL)                                                 \
			__register_frame(f);                                   \
	}                                                                      \
	__attribute__((destructor)) static void rv_cxx_deregister_frame(void)  \
	{                                                                      \
		void *f = rv_eh_frame();                                       \
		if (f != NULL)                                                 \
			__deregister_frame(f);                                 \
	}
#endif

#ifdef __cplusplus
}
#endif

#endif /* REACHVM_H */
