/* efd.h - descriptors and threads the engine keeps on its own behalf.
 *
 * A program may close or dup2() over descriptors it does not know about (closefrom(3)
 * in a daemon, a shell's redirections). The engine therefore parks its long-lived
 * descriptors high in the table, close-on-exec, and tells the interposition layer about
 * them so that close_range()/closefrom() from the program skip them. */
#ifndef S3SHIM_EFD_H
#define S3SHIM_EFD_H

struct efd_hooks {
    void (*own)(int fd);
    void (*disown)(int fd);
    void (*engine_thread)(void); /* at the start of every engine thread */
};

/* Installed once by the interposition layer; without it efd_* only relocate/close. */
void efd_set_hooks(const struct efd_hooks *h);
/* Move fd to a high number with FD_CLOEXEC and mark it engine-owned. Returns the new fd
 * (the old one is closed) or the original fd if relocation is impossible. */
int efd_park(int fd);
/* Grow the process's descriptor table up to where engine descriptors are parked, before
 * the engine starts its threads: growing it in a multi-threaded process waits for an
 * RCU grace period in the kernel (milliseconds on the first S3 request). */
void efd_prepare(void);
/* Close an engine-owned descriptor. */
void efd_close(int fd);
/* Descriptors a library makes for us without a hook to place them (libcurl's wake-up
 * socketpair in curl_multi_init): set around such a call, the interposition layer's
 * socketpair() parks both ends, so they neither take the program's low numbers nor
 * leak into its children. */
extern __thread int efd_parking __attribute__((tls_model("initial-exec")));

/* Called first thing by every engine thread (I/O, upload...): with the interposition
 * layer loaded, every libc call the thread makes goes straight to libc. */
void efd_engine_thread(void);

#endif
