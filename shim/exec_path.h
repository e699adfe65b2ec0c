/* exec_path.h - running a program stored under a mount (exec, posix_spawn). */
#ifndef S3SHIM_EXEC_PATH_H
#define S3SHIM_EXEC_PATH_H

#include <limits.h>

struct exec_target {
    char path[PATH_MAX]; /* what the kernel is given instead */
    int fd;              /* a memfd holding the program, or -1 */
};

/* path names a program under a mount: 1 and t->path to exec instead (its real path, or
 * /proc/self/fd/N of a copy); 0 if it is not ours; -1 with errno (EACCES: no x bit). */
int exec_target(const char *path, struct exec_target *t);
/* The same for execvp's file: a name without '/' looked up in PATH when a directory of
 * PATH is under a mount (the first match wins, ours or not: 0 leaves it to libc). */
int exec_search(const char *file, struct exec_target *t);
/* After an exec that failed, or a spawn: the copy goes. */
void exec_target_done(struct exec_target *t);

#endif
