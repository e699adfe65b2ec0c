/* ofd.h - open file descriptions: what a shim descriptor points to.
 *
 * As in the kernel, several descriptors (dup, fork) share one description: one offset,
 * one set of status flags. Within one process that state is plain memory and the
 * placeholder the program holds is a copy of one O_PATH descriptor (cheap: one fcntl).
 * Before the process forks, execs or spawns, every description is promoted: its state
 * moves into a small memfd mapped MAP_SHARED and each placeholder becomes an O_PATH
 * reference to that memfd, so the offset stays shared with the child. A program started
 * by exec finds its inherited descriptors by their link name in /proc/self/fd and
 * re-attaches to them (ofd_inherit_scan). */
#ifndef S3SHIM_OFD_H
#define S3SHIM_OFD_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

struct mount;

enum ofd_type { OFD_FILE = 1, OFD_DIR = 2 };

#define OFD_MAGIC 0x53334f46u /* "S3OF" */
#define OFD_VERSION 2
#define OFD_MEMFD_NAME "s3shim-ofd"

struct ofd_shared {
    uint32_t magic, version;
    pthread_mutex_t lock; /* robust, process-shared: serialises offset updates */
    int64_t offset;
    int32_t status;  /* O_ACCMODE and status flags (F_GETFL/F_SETFL) */
    int32_t oflags;  /* flags at open, to re-open after exec */
    int32_t type;
    uint32_t key_off; /* key = path + key_off */
    int32_t xfd;      /* a non-close-on-exec copy of the local file's fd, or -1 */
    uint32_t pad;
    uint64_t xdev, xino; /* what xfd must be, checked before it is trusted */
    char uri[1024];   /* mount URI, to find the backend again after exec */
    char path[PATH_MAX];
};

struct ofd {
    _Atomic int refs;
    int type;
    struct mount *m;
    void *fh; /* backend file handle (OFD_FILE) */
    pthread_mutex_t lock; /* this process's threads; sh->lock orders processes */
    struct ofd_shared *sh; /* read with ofd_sh(): promotion swaps it under readers */
    struct ofd_shared *priv; /* the private state before promotion, freed with the ofd */
    int xfd; /* this process's exported copy of the local fd (ofd_export_local), or -1 */
    int kexp; /* its placeholders name the backend's kernel file (kio.h) */
    int kph; /* exposed and shared: an O_PATH of the shared memfd to put back at exec, or -1 */
    int mapped; /* sh is a shared mapping (else private memory) */
    _Atomic int mapped_writable; /* mmap'd MAP_SHARED with PROT_WRITE: msync commits it */
    uint32_t oplog_path; /* the op log's string id of the path, 0 until interned */
};

static inline struct ofd_shared *ofd_sh(const struct ofd *o) { return __atomic_load_n(&o->sh, __ATOMIC_ACQUIRE); }
static inline const char *ofd_path(const struct ofd *o) { return ofd_sh(o)->path; }
static inline const char *ofd_key(const struct ofd *o) { return ofd_sh(o)->path + ofd_sh(o)->key_off; }
/* Status flags (F_GETFL) are read without the lock by every I/O call. */
static inline int ofd_status(const struct ofd *o) { return __atomic_load_n(&ofd_sh(o)->status, __ATOMIC_RELAXED); }
static inline void ofd_set_status(struct ofd *o, int v) { __atomic_store_n(&ofd_sh(o)->status, v, __ATOMIC_RELAXED); }

/* Create a description and its placeholder descriptor (the lowest free fd, like open(2)).
 * The caller installs it in the fd table. Returns the fd or -errno. `oflags` decides
 * O_CLOEXEC of the placeholder. */
int ofd_create(struct mount *m, const char *path, const char *key, int type, int oflags, void *fh,
               struct ofd **out);
void ofd_ref(struct ofd *o);
/* Drop a reference; the last one closes the backend file and returns its result. */
int ofd_put(struct ofd *o);

/* Shared offset lock. */
void ofd_lock(struct ofd *o);
void ofd_unlock(struct ofd *o);

/* At start-up: adopt shim descriptors inherited across exec. */
void ofd_inherit_scan(void);
/* Before fork, exec or spawn: give every description in the fd table its shared memfd
 * and point its placeholders at it. */
void ofd_promote_all(void);
/* Move one description's state into a shared memfd and point every placeholder of it at
 * that memfd; returns an O_PATH descriptor of it (the caller keeps or closes it), -EEXIST
 * if already shared. */
int ofd_promote(struct ofd *o);
/* Make fd name what `from` names (dup3), fd's close-on-exec kept: how a placeholder is
 * re-pointed (promotion, pumps, exposure). dup3's result. */
int ofd_dup_over(int from, int fd);
/* Before exec or spawn: give each description on a local file a descriptor the next
 * program inherits, so it reaches the same file even if it was unlinked or renamed. */
void ofd_export_local(void);
/* Before exec (by the process itself, not a vfork child): the program that holds an
 * upload is ending. Every description open for writing on an object store (ops->commit)
 * is committed when the new program cannot take it up: all its descriptors are
 * close-on-exec (the kernel would close it), or bytes were written (an upload under way
 * cannot move to another program). One with nothing written that the new program
 * inherits passes through as before (`cmd > /s3/b/out` from a shell). If exec then
 * fails, the description stays open, committed: later writes fail as after fsync.
 * Every block:// writer (share, no commit) is shared (committed so far, and followed
 * after): what the program wrote is kept, and one the new program inherits goes on
 * there (a shell's `cmd >>f` opens f in the forked child, after the fork's share). */
void ofd_commit_before_exec(void);
/* Before fork or spawn: a description open for writing as a streaming upload that a
 * child gets as a placeholder is staged (backend share), so that the child, or a program
 * it execs, writes into the same bytes (`exec 3>/s3/b/f; cmd >&3; echo done >&3`).
 * fork: a block:// writer (share, no commit) is shared even if close-on-exec, since the
 * forked child has it until it execs and may write through it. */
void ofd_share_writers(int fork);
/* In the child after fork: reset this process's locks (threads did not follow). */
void ofd_atfork_child(void);

#endif
