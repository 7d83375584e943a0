/* dlwhich.c: a program, not a library: it dlopens argv[1] as glibc finds
 * it, calls argv[2] and prints the value and the file that defines
 * fx_which, so that the tests can compare privload's search with ld.so's
 * own on the same files and environment. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
	if (argc != 3)
		return 2;
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		printf("error %s\n", dlerror());
		return 0;
	}
	long (*fn)(void) = (long (*)(void))dlsym(h, argv[2]);
	void *w = dlsym(h, "fx_which");
	Dl_info info;
	if (!fn || !w || !dladdr(w, &info)) {
		printf("error no %s or fx_which\n", argv[2]);
		return 0;
	}
	printf("%ld %s\n", fn(), info.dli_fname);
	return 0;
}
