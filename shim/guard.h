/* guard.h - the re-entrancy guard.
 *
 * While the engine works on behalf of an interposed call, every libc call made below it
 * must reach libc untouched, even when its path or descriptor looks like ours. The
 * engine's own calls never come here: they go through core/sys.h, a table the shim fills
 * with the real entry points. The guard is for what we do not compile: libcurl, OpenSSL,
 * liburing and expat call open, read, close, fstat... by name, and those bind to our
 * exported wrappers. The guard is per thread and consulted only after the cheap
 * "is this ours?" test, so foreign calls never pay for it. */
#ifndef S3SHIM_GUARD_H
#define S3SHIM_GUARD_H

extern __thread int shim_in_engine __attribute__((tls_model("initial-exec")));

static inline int guard_active(void) { return shim_in_engine != 0; }
static inline void guard_enter(void) { shim_in_engine++; }
static inline void guard_leave(void) { shim_in_engine--; }

#endif
