/* wrap_sock.c - socketpair, for the descriptors libraries make on the engine's behalf.
 *
 * libcurl's multi handle makes a wake-up socketpair with no callback to place it. Made
 * on a program's thread at the engine's start, it took the lowest free numbers (the
 * ones a program that just closed fd 0 expects back) and, without close-on-exec, leaked
 * into every child the program ran. While the engine asks (efd_parking), both ends are
 * parked like every other engine descriptor; any other call passes straight through. */
#define _GNU_SOURCE 1
#include "real.h"
#include "shim.h"

#include "../core/efd.h"

#include <sys/socket.h>

SHIM_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
    int r = REAL(socketpair)(domain, type, protocol, sv);
    if (__builtin_expect(efd_parking != 0, 0) && r == 0) {
        sv[0] = efd_park(sv[0]);
        sv[1] = efd_park(sv[1]);
    }
    return r;
}
