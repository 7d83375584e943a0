/*
 * textrel.c: an absolute address stored in .text, which needs a
 * relocation of code (DT_TEXTREL; linked with -z notext), which privload
 * refuses.
 */
long fx_target(void) { return 5; }

__asm__(".text\n"
	".globl fx_textrel_table\n"
	"fx_textrel_table:\n"
	"\t.quad fx_target\n");
