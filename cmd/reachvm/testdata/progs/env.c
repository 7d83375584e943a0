// env: the arguments, the whole environment in order, setenv and
// unsetenv, and what the auxiliary vector says about the process.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
	printf("argc %d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d] = \"%s\"\n", i, argv[i]);
	int n = 0;
	for (char **e = environ; *e; e++, n++)
		printf("env %s\n", *e);
	printf("%d variables\n", n);
	const char *v = getenv("REACHVM_SUITE");
	printf("REACHVM_SUITE=%s\n", v ? v : "(unset)");
	setenv("REACHVM_SUITE", "changed", 1);
	unsetenv("REACHVM_SUITE_GONE");
	printf("after: REACHVM_SUITE=%s REACHVM_SUITE_GONE=%s\n", getenv("REACHVM_SUITE"), getenv("REACHVM_SUITE_GONE") ? "set" : "unset");
	printf("page size %ld %lu, secure %lu, random bytes %s, uid matches %s\n", sysconf(_SC_PAGESIZE), getauxval(AT_PAGESZ), getauxval(AT_SECURE),
	       getauxval(AT_RANDOM) ? "given" : "missing", getauxval(AT_UID) == getuid() ? "yes" : "no");
	return argc;
}
