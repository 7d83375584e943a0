/* fwd.dll: exports that forward elsewhere (fwd.def):
 *   fwd_strlen = msvcrt.strlen   a forwarder by name to a host DLL;
 *   fwd_htonl  = ws2_32.#8       a forwarder by ordinal;
 *   fwd_local  = fwd.local_sum   a forwarder to this DLL itself;
 *   by_ordinal @7 NONAME         an export with no name at all. */

#define DLL_PROCESS_ATTACH 1

int local_sum(int a, int b, int c) { return a + b + c; }

int by_ordinal(void) { return 7007; }

int DllMain(void *hinst, unsigned reason, void *reserved) {
	(void)hinst;
	(void)reason;
	(void)reserved;
	return 1;
}
