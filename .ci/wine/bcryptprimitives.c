/* Wine 8 has no bcryptprimitives.dll, whose ProcessPrng Rust's std calls at
 * start-up on Windows. This stand-in exports ProcessPrng on top of
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. Built by
 * .ci/run with mingw and copied into the Wine prefix's system32; used only
 * to run the Windows test suite under Wine. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
