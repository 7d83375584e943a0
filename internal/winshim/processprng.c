/*
 * bcryptprimitives.dll shim for Wine 8.0.
 *
 * Go 1.24+ Windows executables take their randomness from
 * bcryptprimitives.dll!ProcessPrng at start-up and abort when it is missing.
 * Wine 8.0 ships no bcryptprimitives.dll, so every Go test binary dies before
 * main. This DLL exports ProcessPrng and reads the host's /dev/urandom
 * through Wine's Z: drive (or its \\?\unix\ path form). It is built with
 * mingw-w64 by scripts/wine/lib.sh and copied into the Wine prefix's
 * system32; it is never used on real Windows, which has the real DLL.
 *
 * It imports kernel32 only, which every process has loaded anyway. It used
 * to forward to advapi32's SystemFunction036 (RtlGenRandom), but Go loads
 * this DLL into every process, and advapi32 and its import sechost then
 * came with it, at Wine's bases for them, 0x1_d8c9_0000 and 0x1_eaf6_0000:
 * inside [0x1_8000_0000, +2 GiB), the range bench's strategy A wants for
 * DLLs' preferred bases, which it then never got under Wine. For the same
 * reason lib.sh links the shim itself far above that range.
 */
#include <windows.h>

/* The open /dev/urandom, published once; INVALID_HANDLE_VALUE until then. */
static HANDLE volatile urandom = INVALID_HANDLE_VALUE;

static HANDLE open_urandom(void)
{
	static const WCHAR *const paths[] = {L"Z:\\dev\\urandom", L"\\\\?\\unix\\dev\\urandom"};
	HANDLE h = urandom, prev;
	unsigned i;

	if (h != INVALID_HANDLE_VALUE)
		return h;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		h = CreateFileW(paths[i], GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
				OPEN_EXISTING, 0, NULL);
		if (h != INVALID_HANDLE_VALUE)
			break;
	}
	if (h == INVALID_HANDLE_VALUE)
		return h;
	/* Two threads may race here: the loser closes its handle. */
	prev = InterlockedCompareExchangePointer((PVOID volatile *)&urandom, h, INVALID_HANDLE_VALUE);
	if (prev != INVALID_HANDLE_VALUE) {
		CloseHandle(h);
		return prev;
	}
	return h;
}

/*
 * ProcessPrng fills data with len random bytes. On Windows it never fails;
 * here it returns FALSE only if /dev/urandom cannot be opened or read,
 * which Go reports as a fatal error rather than running with unseeded
 * state.
 */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	HANDLE h = open_urandom();

	if (h == INVALID_HANDLE_VALUE)
		return FALSE;
	while (len > 0) {
		/* ReadFile takes a 32-bit length, and may return fewer bytes. */
		DWORD n = len > 0x100000 ? 0x100000 : (DWORD)len, got = 0;
		if (!ReadFile(h, data, n, &got, NULL) || got == 0)
			return FALSE;
		data += got;
		len -= got;
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
