/* noimports.dll: a DLL with no imports at all (linked -nostdlib, entry point
 * DllMain), so that loading it exercises only privload's own work: copying
 * sections, base relocations, protections and DllMain.
 *
 * DllMain records every call in exported variables, which a test reads
 * through the library's exports while it is loaded. DLL_PROCESS_DETACH
 * runs as the image is about to disappear, so it also writes a record to
 * memory the test owns, registered beforehand with set_detach_sink. */

typedef unsigned long long u64;

#define EXPORT __declspec(dllexport)

#define DLL_PROCESS_DETACH 0
#define DLL_PROCESS_ATTACH 1

EXPORT volatile int attach_count;
EXPORT volatile int detach_count;
EXPORT volatile u64 attach_hinst;
EXPORT volatile u64 attach_reserved;

/* Where DllMain(DLL_PROCESS_DETACH) reports: [0] a magic number, [1] the
 * hinstDLL it was given, [2] lpReserved, [3] the detach count. */
static volatile u64 *detach_sink;

EXPORT void set_detach_sink(volatile u64 *p) { detach_sink = p; }

EXPORT int add(int a, int b) { return a + b; }

/* where returns its own run-time address: the test checks it lies in the
 * slot privload chose, i.e. that the code runs from vmcode. */
EXPORT void *where(void) { return (void *)where; }

/* A table of function pointers: one IMAGE_REL_BASED_DIR64 relocation per
 * entry, since the DLL is never loaded at its preferred base. */
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }
static int (*const ops[])(int, int) = {add, sub, mul};

EXPORT int apply(int op, int a, int b) {
	if (op < 0 || op >= (int)(sizeof ops / sizeof ops[0]))
		return -1;
	return ops[op](a, b);
}

int DllMain(void *hinst, unsigned reason, void *reserved) {
	switch (reason) {
	case DLL_PROCESS_ATTACH:
		attach_count++;
		attach_hinst = (u64)hinst;
		attach_reserved = (u64)reserved;
		break;
	case DLL_PROCESS_DETACH:
		detach_count++;
		if (detach_sink) {
			detach_sink[1] = (u64)hinst;
			detach_sink[2] = (u64)reserved;
			detach_sink[3] = (u64)detach_count;
			detach_sink[0] = 0x0de7ac4ed11ULL;
		}
		break;
	}
	return 1;
}
