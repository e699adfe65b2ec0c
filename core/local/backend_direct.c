/* backend_direct.c - direct:///DIR: files below DIR (or block devices, with /dev) read and
 * written with O_DIRECT through io_uring.
 *
 * The namespace is file://'s own (backend_file.h): same confined lookups, same calls.
 * Only open files differ (direct_file.c). The engine (uring.c) starts with the first
 * request of a process, never at mount time, since the library is loaded into every
 * program. The mount's stats get a child set for the device requests themselves, whose
 * detail line tells the alignment in use, the queue depth seen, and whether any file
 * ran buffered because O_DIRECT was refused. */
#include "../config.h"
#include "../sys.h"
#include "direct.h"
#include "../log.h"

#include "dio_align.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int dm_mount(const char *where, const struct cfg *cfg, struct stats_set *stats, void **msp, char *err,
                    size_t errlen)
{
    struct direct_mount *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int r = fm_root_open(&m->fm, "direct", where, err, errlen);
    if (r < 0) {
        free(m);
        return r;
    }
    size_t uri_len = strlen(where) + sizeof "direct://";
    if (!(m->uri = malloc(uri_len))) {
        fm_root_close(&m->fm);
        free(m);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(m->uri, uri_len, "direct://%s", where);
    m->chunk = cfg->direct_chunk;
    m->depth = cfg->direct_depth;
    m->fallback = cfg->direct_fallback;
    m->gather = cfg->direct_gather;
    pthread_mutex_init(&m->detail_lock, NULL);
    snprintf(m->dev.name, sizeof m->dev.name, "io_uring");
    snprintf(m->dev.detail, sizeof m->dev.detail, "O_DIRECT requests");
    if (stats) {
        m->dev.next = stats->children;
        stats->children = &m->dev;
    }
    struct uring_settings us = {.threads = cfg->direct_threads, .entries = 256, .slot_size = cfg->direct_chunk,
                                .slots = cfg->direct_buffers, .sqpoll = cfg->direct_sqpoll, .engine = cfg->direct_engine};
    uring_configure(&us);
    *msp = m;
    return 0;
}

static void dm_unmount(void *ms)
{
    struct direct_mount *m = ms;
    fm_root_close(&m->fm);
    pthread_mutex_destroy(&m->detail_lock);
    free(m->uri);
    free(m);
}

static void dm_atfork_child(void *ms)
{
    struct direct_mount *m = ms;
    pthread_mutex_init(&m->detail_lock, NULL);
    atomic_store(&m->qd.cur, 0);
    uring_atfork_child();
}

int bk_direct_explain(const char *dir, const struct cfg *cfg, char *buf, size_t len)
{
    const char *fb = cfg->direct_fallback ? "opens fail (S3SHIM_DIRECT_FALLBACK=error)" : "buffered, with a warning";
    if (strcmp(dir, "/dev") == 0 || strcmp(dir, "/dev/") == 0) {
        snprintf(buf, len, "block devices: alignment of each device (statx or BLKSSZGET) at open");
        return 0;
    }
    /* An unnamed temporary file shows what files there get; nothing is left behind. */
    int fd = sys.open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(buf, len, "alignment found at open (cannot probe %s: %s); if O_DIRECT is refused: %s", dir,
                 strerror(errno), fb);
        return -1;
    }
    struct stat st;
    struct dio_align a;
    char why[200] = "";
    int r = sys.fstat(fd, &st) == 0 ? dio_probe(fd, &st, &a, why, sizeof why) : -errno;
    int d = r == 0 ? sys.open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600) : -1;
    if (r == 0 && d < 0 && errno == EINVAL) {
        r = 1;
        snprintf(why, sizeof why, "O_DIRECT refused by the filesystem (EINVAL at open)");
    }
    if (d >= 0) sys.close(d);
    sys.close(fd);
    if (r == 0)
        snprintf(buf, len, "O_DIRECT, alignment memory %u, offset %u (%s); chunk %zu, depth %d%s", a.mem, a.off,
                 dio_source_name(a.source), cfg->direct_chunk, cfg->direct_depth,
                 cfg->direct_gather ? ", writes gathered across calls" : "");
    else
        snprintf(buf, len, "%s: %s", r > 0 ? why : strerror(-r), fb);
    return 0;
}

const struct backend_ops bk_direct_ops = {
    .scheme = "direct",
    .mount = dm_mount,
    .unmount = dm_unmount,
    .atfork_child = dm_atfork_child,
    .open = df_open,
    .pread = df_pread,
    .pwrite = df_pwrite,
    .fsync = df_fsync,
    .ftruncate = df_ftruncate,
    .fstat = df_fstat,
    .fallocate = df_fallocate,
    .fadvise = df_fadvise,
    .futimens = df_futimens,
    .close = df_close,
    .local_fd = df_local_fd,
    .kernel_io = df_kernel_io,
    .setfl = df_setfl,
    .open_fd = df_open_fd,
    .stat = fm_stat,
    .access = fm_access,
    .unlink = fm_unlink,
    .rename = fm_rename,
    .mkdir = fm_mkdir,
    .rmdir = fm_rmdir,
    .truncate = fm_truncate,
    .utimens = fm_utimens,
    .statvfs = fm_statvfs,
    .local_path = fm_local_path,
    .opendir = fm_opendir,
    .readdir = fm_readdir,
    .closedir = fm_closedir,
};
