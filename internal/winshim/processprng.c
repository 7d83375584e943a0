/*
 * bcryptprimitives.dll shim for Wine 8.0.
 *
 * Go 1.24+ Windows executables take their randomness from
 * bcryptprimitives.dll!ProcessPrng at start-up and abort when it is missing.
 * Wine 8.0 ships no bcryptprimitives.dll, so every Go test binary dies before
 * main. This DLL exports ProcessPrng and forwards to advapi32's
 * SystemFunction036 (RtlGenRandom), which Wine implements. It is built with
 * mingw-w64 by scripts/wine/test.sh and copied into the Wine prefix's
 * system32; it is never used on real Windows, which has the real DLL.
 */
#include <windows.h>

/* RtlGenRandom; declared here so no ntsecapi.h quirks matter. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/*
 * ProcessPrng fills data with len random bytes. On Windows it never fails;
 * here it returns FALSE only if RtlGenRandom does, which Go reports as a
 * fatal error rather than running with unseeded state.
 */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		/* RtlGenRandom takes a 32-bit length: feed it in chunks. */
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
	(void)inst;
	(void)reason;
	(void)reserved;
	return TRUE;
}
