/* auxv: prints the auxiliary vector the program started with, one entry
 * a line in the order it came, as "TYPE VALUE", where values that depend
 * on where things were loaded are replaced by what they say that does
 * not: AT_PHDR and AT_ENTRY by their distance from the executable's load
 * address (dl_iterate_phdr's first object), AT_BASE by whether it is the
 * interpreter's load address, AT_RANDOM, AT_EXECFN and AT_PLATFORM by
 * what they point to, AT_SYSINFO_EHDR by whether an ELF header is there.
 * Then what libc derived from it: getauxval of each type, the page size,
 * sysconf(_SC_MINSIGSTKSZ), and the program's path as /proc/self/exe
 * gives it. A native run and a run under reachvm print the same. */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

static unsigned long exe_base, interp_base;

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data) {
	(void)size;
	int *n = data;
	if ((*n)++ == 0)
		exe_base = info->dlpi_addr;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC && strstr(info->dlpi_name, "ld-linux"))
			interp_base = info->dlpi_addr;
	return 0;
}

static void value(unsigned long type, unsigned long v) {
	switch (type) {
	case AT_PHDR:
	case AT_ENTRY:
		printf("%lu exe+%#lx\n", type, v - exe_base);
		break;
	case AT_BASE:
		printf("%lu is-interp=%d\n", type, v == interp_base);
		break;
	case AT_RANDOM:
		printf("%lu random-nonzero=%d\n", type, v != 0);
		break;
	case AT_EXECFN:
	case AT_PLATFORM:
		printf("%lu \"%s\"\n", type, v ? (const char *)v : "(null)");
		break;
	case AT_SYSINFO_EHDR:
		printf("%lu elf=%d\n", type, v && memcmp((const void *)v, ELFMAG, SELFMAG) == 0);
		break;
	default:
		printf("%lu %#lx\n", type, v);
	}
}

int main(int argc, char **argv) {
	(void)argc;
	(void)argv;
	int n = 0;
	dl_iterate_phdr(phdr_cb, &n);
	char **e = environ;
	while (*e)
		e++;
	unsigned long *aux = (unsigned long *)(e + 1);
	for (; aux[0] != AT_NULL; aux += 2)
		value(aux[0], aux[1]);
	printf("getauxval:\n");
	static const unsigned long types[] = {AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY,
		AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK, AT_SECURE, AT_RANDOM, AT_HWCAP2,
		AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ, 27 /* AT_RSEQ_FEATURE_SIZE */, 28 /* AT_RSEQ_ALIGN */,
		29 /* AT_HWCAP3 */, 30 /* AT_HWCAP4 */};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		value(types[i], getauxval(types[i]));
	printf("pagesize %ld\n", sysconf(_SC_PAGESIZE));
	printf("minsigstksz %ld\n", sysconf(_SC_MINSIGSTKSZ));
	char self[4096];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	self[k < 0 ? 0 : k] = 0;
	printf("exe %s\n", self);
	return 0;
}
