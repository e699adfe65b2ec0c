/* backend.h - the vtable every storage backend implements (one per URI scheme).
 *
 * Backends see keys, never program paths: a key is the part of a normalised path below
 * the mount root ("" is the root itself, no leading '/', never '..'). Every operation
 * returns 0 (or a count) on success and -errno on failure; backends never set errno for
 * the caller. A NULL slot means "not meaningful here" and the caller answers ENOTSUP.
 *
 * The same table serves s3://, file://, direct:// and block://: object stores implement
 * the file operations with whole-object semantics (sequential writes, close commits),
 * local backends implement them literally. */
#ifndef S3SHIM_BACKEND_H
#define S3SHIM_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

struct cfg;
struct stats_set;

struct bk_dirent {
    uint64_t ino;
    unsigned char type; /* DT_* */
    char name[256];
};

struct backend_ops {
    const char *scheme;

    /* Mount the URI remainder after "scheme://", with the engine settings in cfg. On
     * failure returns -errno and writes a one-line reason into err. */
    int (*mount)(const char *where, const struct cfg *cfg, struct stats_set *stats, void **ms, char *err,
                 size_t errlen);
    void (*unmount)(void *ms);
    /* fork(): optional; prepare holds the backend's threads still (outside any library
     * lock) while the address space is copied, parent lets them go. */
    void (*atfork_prepare)(void *ms);
    void (*atfork_parent)(void *ms);
    /* In a child after fork(): rebuild anything that does not survive it (threads). */
    void (*atfork_child)(void *ms);
    /* Optional: bring the stats' detail lines up to date (counters kept apart from the
     * per-op figures) just before they are printed. */
    void (*describe)(void *ms);

    /* Open files. */
    int (*open)(void *ms, const char *key, int flags, mode_t mode, void **fh);
    ssize_t (*pread)(void *fh, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(void *fh, const void *buf, size_t len, off_t off);
    /* Optional: an O_APPEND write, at the end of the file as other processes left it
     * (the offset found under the backend's own lock, so that appenders in several
     * processes never write over each other): bytes written, *at where they went. NULL:
     * the shim writes at the size fstat gives. */
    ssize_t (*append)(void *fh, const void *buf, size_t len, off_t *at);
    int (*fsync)(void *fh, int datasync);
    int (*ftruncate)(void *fh, off_t len);
    int (*fstat)(void *fh, struct stat *st);
    int (*fallocate)(void *fh, int mode, off_t off, off_t len);
    int (*fadvise)(void *fh, off_t off, off_t len, int advice);
    int (*futimens)(void *fh, const struct timespec ts[2]);
    int (*close)(void *fh); /* commits (object stores); returns the commit's result */
    /* Object stores: make what was written so far visible now, as close would, because
     * the program writing it is ending without closing (exec). Later writes fail. A copy
     * of the handle in a forked child answers 0 and leaves the parent's upload alone.
     * NULL for backends whose data the kernel already holds (file://, direct://): the
     * shim also takes a non-NULL slot to mean "an upload cannot continue in a new
     * program". */
    int (*commit)(void *fh);
    /* Object stores: another process is about to get a descriptor of this description
     * (fork, posix_spawn) and may write through it, or exec a program that does. Make the
     * bytes something every process can write to in order (stage them) while this
     * process's upload holds nothing on the server yet. 0, or -errno with the description
     * unchanged (an upload with parts already sent stays this process's). NULL where the
     * kernel already holds the data. */
    int (*share)(void *fh);
    /* Object stores: close a description open for writing whose shared offset is past 0.
     * If this process's own upload holds nothing, a program it exec'd took the
     * description up and wrote (and committed) the object itself: the empty upload is
     * dropped instead of replacing that object. Otherwise the same as close. */
    int (*close_shared)(void *fh);
    /* The kernel descriptor behind an open file, or -1: lets mmap, locks, fchmod and
     * friends work on local backends. */
    int (*local_fd)(void *fh);
    /* Optional: the kernel descriptor the program's own asynchronous I/O (io_uring, Linux
     * AIO) on this file goes to, past the engine. What the engine holds back is written
     * first and what it keeps of the file's bytes forgotten; from then on it keeps none
     * (the kernel may change the file at any moment). direct: the program opened the file
     * with O_DIRECT (its requests are aligned for it); else the descriptor must take any
     * alignment (direct://: a buffered descriptor of the same file). -errno: none (object
     * stores, whose bytes have no kernel file). */
    int (*kernel_io)(void *fh, int direct);
    /* Take up a file from such a descriptor, inherited from the program that exec'd us
     * (the file may have been unlinked or renamed since it was opened). */
    int (*open_fd)(void *ms, int fd, int flags, void **fh);
    /* The program set the file's status flags (F_SETFL: O_APPEND, O_NONBLOCK...): 0 or
     * -errno. NULL: they are set on the local_fd, if any. */
    int (*setfl)(void *fh, int flags);
    /* The descriptor fcntl and flock locks of an open file act on, or -errno; NULL: the
     * local_fd's (object stores lock a host-wide file per object). */
    int (*lock_fd)(void *fh);
    /* The descriptor mmap maps [off, off+len) from, made ready for that mapping (data
     * fetched, a shared writable mapping noted), or -errno; NULL: the local_fd's. */
    int (*local_map)(void *fh, off_t off, size_t len, int prot, int flags);

    /* Namespace. */
    int (*stat)(void *ms, const char *key, struct stat *st, int nofollow);
    int (*access)(void *ms, const char *key, int mode, int flags);
    int (*unlink)(void *ms, const char *key);
    int (*rename)(void *ms, const char *from, const char *to, unsigned flags);
    int (*mkdir)(void *ms, const char *key, mode_t mode);
    int (*rmdir)(void *ms, const char *key);
    int (*truncate)(void *ms, const char *key, off_t len);
    int (*utimens)(void *ms, const char *key, const struct timespec ts[2], int nofollow);
    int (*statvfs)(void *ms, const char *key, struct statvfs *sv);
    /* The real path behind a key (local backends only) for calls that are meaningful only
     * on real files: xattrs, chmod/chown, links. Returns length or -errno. */
    int (*local_path)(void *ms, const char *key, char *buf, size_t len);

    /* Directories: entries one at a time; readdir returns 1, 0 at the end, or -errno. */
    int (*opendir)(void *ms, const char *key, void **dh);
    int (*readdir)(void *dh, struct bk_dirent *ent);
    void (*closedir)(void *dh);

    /* An object store that keeps permission bits (block://): chmod of a key, of an open
     * file. NULL on the others: chmod there succeeds without effect (local backends use
     * local_path/local_fd instead). */
    int (*chmod)(void *ms, const char *key, mode_t mode);
    int (*fchmod)(void *fh, mode_t mode);
};

/* Find the vtable for a URI's scheme ("file://..."); sets *rest to what follows "://".
 * Returns NULL for an unknown scheme; *known_but_unbuilt is set when the scheme is one
 * of ours that this build does not provide yet. */
const struct backend_ops *bk_lookup(const char *uri, const char **rest, int *known_but_unbuilt);

#endif
