/* layoutv2 prints, as layout.c does, what version 2 of reachvm.h added:
 * the module's functions, the block's module, function wrapping
 * (TestNativeLayout reads both programs' lines). */
#include <stdio.h>
#include "reachvm.h"

#define S(s) printf(#s " size %zu\n", sizeof(struct s))
#define F(s, f) printf(#s " " #f " %zu %zu\n", offsetof(struct s, f), sizeof(((struct s *)0)->f))

int main(void)
{
	S(rv_block); F(rv_block, module);
	S(rv_module); F(rv_module, nsyms); F(rv_module, nnames); F(rv_module, syms); F(rv_module, names);
	F(rv_module, wraps);
	S(rv_symbol); F(rv_symbol, name); F(rv_symbol, start); F(rv_symbol, end);
	S(rv_wrap); F(rv_wrap, func); F(rv_wrap, pre); F(rv_wrap, post);
	S(rv_wrap_table); F(rv_wrap_table, n); F(rv_wrap_table, cap); F(rv_wrap_table, error);
	F(rv_wrap_table, reserved); F(rv_wrap_table, wraps);
	S(rv_wrapcall); F(rv_wrapcall, thread); F(rv_wrapcall, func); F(rv_wrapcall, retaddr);
	F(rv_wrapcall, args); F(rv_wrapcall, retval); F(rv_wrapcall, data); F(rv_wrapcall, skip);
	F(rv_wrapcall, unwound); F(rv_wrapcall, post); F(rv_wrapcall, reserved);
	printf("const RV_ERR_NULL %d\nconst RV_ERR_NOT_FOUND %d\nconst RV_ERR_EVENT %d\n",
	       RV_ERR_NULL, RV_ERR_NOT_FOUND, RV_ERR_EVENT);
	return 0;
}
