/*
 * A stand-in bcryptprimitives.dll for running updraft.exe under Wine in tests. Wine only:
 * it is never shipped, as real Windows 10 and later has this DLL.
 *
 * Rust 1.78 and later make every Windows binary import ProcessPrng from
 * bcryptprimitives.dll. Debian 12's Wine 8.0 has no such DLL, so without this file the
 * .exe stops at load time (status 53). `make windows-smoke` builds it into the test Wine
 * prefix's system32; tests/windows/smoke.sh then runs the real .exe there.
 *
 * ProcessPrng takes a SIZE_T length, while advapi32's SystemFunction036 (RtlGenRandom)
 * takes a ULONG, 32 bits on Windows, so the buffer is filled in chunks.
 */
#include <windows.h>

/* advapi32's RtlGenRandom, declared here rather than through <ntsecapi.h>'s macro. */
__declspec(dllimport) BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* The largest length one SystemFunction036 call accepts. */
#define MAX_CHUNK ((SIZE_T)0xFFFFFFFFul)

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = (ULONG)(length < MAX_CHUNK ? length : MAX_CHUNK);
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
