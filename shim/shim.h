/* shim.h - state shared by the interposition layer's files.
 *
 * One process-wide instance, built by the constructor (init.c) before main() and
 * rebuilt in a forked child. Everything a wrapper needs that is not per descriptor. */
#ifndef S3SHIM_SHIM_H
#define S3SHIM_SHIM_H

#include "../core/config.h"
#include "../core/mount.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

struct shim_state {
    _Atomic int ready; /* constructor finished: routing may look at mounts */
    struct cfg cfg;
    struct mount_table mounts;
    pid_t pid; /* set again in a forked child (atfork) */
    /* A child sharing our memory under another pid was started (clone with CLONE_VM and
     * without CLONE_THREAD; vfork is served by fork), or the fork mark below could not be
     * made: from then on the wrappers ask getpid() whether they run in it. */
    _Atomic int vm_children;
    /* 1 in a page the kernel zeroes in every child made by fork (MADV_WIPEONFORK), set
     * again by our fork handler: 0 in a child that forked without libc's fork (a raw
     * clone system call) or before the handler ran. */
    volatile const unsigned char *fork_mark;
    uint64_t t0_ns;
    int root; /* first process of a run (S3SHIM_ROOT_PID was unset) */
    int exit_status; /* what exit()/quick_exit() was given, once exit_status_known */
    _Atomic int exit_status_known;
};

extern struct shim_state shim;

/* Do we run in a child that must not touch our tables: one sharing our memory under
 * another pid, or one forked behind libc's back? Two loads, and a getpid() only when the
 * fork mark is gone or a memory-sharing child was ever started. */
static inline int shim_foreign_child(void)
{
    if (__builtin_expect(*shim.fork_mark && !atomic_load_explicit(&shim.vm_children, memory_order_relaxed), 1))
        return 0;
    return getpid() != shim.pid;
}

/* Made at start-up and again in a forked child (init.c). */
void shim_fork_mark_set(void);

/* Fail a wrapper: set errno from a -errno result and return -1. */
static inline int shim_fail(int neg)
{
    errno = -neg;
    return -1;
}

/* A mount that can serve requests; otherwise errno = ENODEV and a one-time log line. */
int shim_mount_usable(struct mount *m);

/* Close every shim descriptor (exit path, so that commits happen); with writers_only,
 * only descriptions open for writing (_exit: readers are left to the kernel, nothing is
 * waited for on their behalf). Returns how many closes failed. */
int shim_close_all(int writers_only);

#endif
