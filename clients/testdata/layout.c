/* layout prints the layout of reachvm.h's structs, one line each:
 * "STRUCT size N", then "STRUCT FIELD OFFSET SIZE" for each field
 * (TestNativeLayout compares them with Go's mirrors). */
#include <stdio.h>
#include "reachvm.h"

#define S(s) printf(#s " size %zu\n", sizeof(struct s))
#define F(s, f) printf(#s " " #f " %zu %zu\n", offsetof(struct s, f), sizeof(((struct s *)0)->f))

int main(void)
{
	S(rv_thread); F(rv_thread, tid); F(rv_thread, reserved); F(rv_thread, data);
	S(rv_instr); F(rv_instr, pc); F(rv_instr, bytes); F(rv_instr, len); F(rv_instr, is_control); F(rv_instr, mnemonic); F(rv_instr, has_mem); F(rv_instr, nmems); F(rv_instr, mems);
	S(rv_memref); F(rv_memref, disp); F(rv_memref, size); F(rv_memref, flags); F(rv_memref, seg); F(rv_memref, scale);
	F(rv_memref, base); F(rv_memref, index); F(rv_memref, reserved);
	S(rv_arg); F(rv_arg, kind); F(rv_arg, reg); F(rv_arg, value);
	S(rv_insert); F(rv_insert, kind); F(rv_insert, at); F(rv_insert, target); F(rv_insert, n);
	F(rv_insert, flags); F(rv_insert, nargs); F(rv_insert, args);
	S(rv_block); F(rv_block, pc); F(rv_block, n); F(rv_block, ninserts); F(rv_block, inserts_cap);
	F(rv_block, error); F(rv_block, instrs); F(rv_block, inserts); F(rv_block, thread);
	S(rv_syscall); F(rv_syscall, thread); F(rv_syscall, nr); F(rv_syscall, args); F(rv_syscall, result);
	F(rv_syscall, skip); F(rv_syscall, reserved);
	S(rv_exit); F(rv_exit, status); F(rv_exit, fd); F(rv_exit, error);
	S(rv_client); F(rv_client, version); F(rv_client, size); F(rv_client, name); F(rv_client, block);
	F(rv_client, thread_start); F(rv_client, thread_exit); F(rv_client, syscall_pre); F(rv_client, syscall_post);
	F(rv_client, exit); F(rv_client, module_load); F(rv_client, module_unload); F(rv_client, signal);
	S(rv_context); F(rv_context, regs); F(rv_context, rflags);
	S(rv_module); F(rv_module, path); F(rv_module, base); F(rv_module, end);
	S(rv_signal); F(rv_signal, thread); F(rv_signal, signo); F(rv_signal, code); F(rv_signal, addr);
	F(rv_signal, pc); F(rv_signal, fault); F(rv_signal, suppress); F(rv_signal, siginfo);
	F(rv_client, trace);
	S(rv_trace_record); F(rv_trace_record, addr); F(rv_trace_record, tag); F(rv_trace_record, extra);
	/* The constants Go mirrors. */
	printf("const RV_API_VERSION %d\n", RV_API_VERSION);
	printf("const RV_MAX_ARGS %d\n", RV_MAX_ARGS);
	printf("const RV_ARG_CONST %d\nconst RV_ARG_REG %d\nconst RV_ARG_PC %d\nconst RV_ARG_EA %d\nconst RV_ARG_CONTEXT %d\n",
	       RV_ARG_CONST, RV_ARG_REG, RV_ARG_PC, RV_ARG_EA, RV_ARG_CONTEXT);
	printf("const RV_INSERT_ADD %d\nconst RV_INSERT_CLEAN_CALL %d\n", RV_INSERT_ADD, RV_INSERT_CLEAN_CALL);
	printf("const RV_INSERT_RECORD_EA %d\nconst RV_INSERT_RECORD_ADDR %d\n", RV_INSERT_RECORD_EA, RV_INSERT_RECORD_ADDR);
	printf("const RV_R15 %d\nconst RV_RSP %d\n", RV_R15, RV_RSP);
	printf("const RV_ERR_VALUE %d\n", RV_ERR_VALUE);
	printf("const RV_LOCKED %d\nconst RV_VECTOR %d\n", RV_LOCKED, RV_VECTOR);
	printf("const RV_INSERT_RECORD_REF %d\nconst RV_NO_REG %d\n", RV_INSERT_RECORD_REF, RV_NO_REG);
	printf("const RV_MEM_READ %d\nconst RV_MEM_WRITE %d\nconst RV_MEM_IMPLICIT %d\nconst RV_MEM_RIP %d\n",
	       RV_MEM_READ, RV_MEM_WRITE, RV_MEM_IMPLICIT, RV_MEM_RIP);
	printf("const RV_MEM_ADDR_ONLY %d\nconst RV_MEM_ADDR32 %d\nconst RV_MEM_REPEAT %d\n",
	       RV_MEM_ADDR_ONLY, RV_MEM_ADDR32, RV_MEM_REPEAT);
	return 0;
}
