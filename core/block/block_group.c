/* block_group.c - group commit for a block:// mount: when a commit made only visible
 * (TX_VISIBLE, blk_vroot.c) becomes durable.
 *
 * With S3SHIM_BLOCK_COMMIT_MS = N > 0, a close or a namespace change publishes its commit
 * to every process at once but flushes nothing; everything published becomes durable with
 * one flush pair (blk_make_durable) at the first of: N ms after the first commit this
 * process left undurable (a thread of the mount sleeps until then, like ext4's commit
 * interval), an fsync/fdatasync on the mount, the process's end (exit, _exit, exec, and
 * unmount), or a new process mounting the store and finding a published root older than
 * N ms (its writer was killed: the new process's thread does it, the program goes on).
 * So N ms bounds what a power cut can take, and commits arriving closer together than a
 * flush takes share it. N = 0: every commit durable before its call returns. The same
 * thread commits a batch of closes when it is due (block_batch.c). */
#include "block.h"
#include "bmount.h"

#include "../log.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block_mount *reg; /* this process's mounts, for the end of the process */

static void durable_now(struct block_mount *m)
{
    int e = blk_make_durable(&m->st);
    if (e) slog_error("block: %s: making the last commits durable: %s", m->uri, strerror(-e));
}

static void *flusher(void *arg)
{
    struct block_mount *m = arg;
    pthread_mutex_lock(&m->g_lock);
    m->g_running = 1;
    pthread_cond_broadcast(&m->g_cond); /* start_thread waits for this */
    while (!m->g_stop) {
        uint64_t now = stats_now_ns();
        if (m->bt_due && now >= m->bt_due) { /* closes waiting in the batch (block_batch.c) */
            m->bt_due = 0;
            pthread_mutex_unlock(&m->g_lock);
            bb_flush(m);
            pthread_mutex_lock(&m->g_lock);
            continue;
        }
        if (!m->g_since && !m->bt_due) {
            pthread_cond_wait(&m->g_cond, &m->g_lock);
            continue;
        }
        uint64_t due = m->g_since ? m->g_since + (uint64_t)m->commit_ms * 1000000ull : UINT64_MAX;
        if (m->bt_due && m->bt_due < due) due = m->bt_due;
        if (now < due) {
            struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
            pthread_cond_timedwait(&m->g_cond, &m->g_lock, &ts);
            continue;
        }
        m->g_since = 0;
        m->g_busy = 1;
        pthread_mutex_unlock(&m->g_lock);
        durable_now(m);
        pthread_mutex_lock(&m->g_lock);
        m->g_busy = 0;
        pthread_cond_broadcast(&m->g_cond); /* bg_finish may wait for this step */
    }
    pthread_mutex_unlock(&m->g_lock);
    return NULL;
}

/* The mount's thread, if this process has none yet; g_lock held. It is often started
 * just before a fork (the share of a writer at fork commits), so the caller waits until
 * it runs: a thread still starting holds allocator locks (ASan's are not fork-safe) that a
 * forked child would inherit held. */
static void start_thread(struct block_mount *m)
{
    if (!m->g_thread_on || m->g_pid != getpid()) {
        m->g_pid = getpid();
        m->g_running = 0;
        m->g_thread_on = pthread_create(&m->g_thread, NULL, flusher, m) == 0;
        if (!m->g_thread_on) slog_warn("block: %s: no flusher thread; commits become durable at fsync or exit", m->uri);
        while (m->g_thread_on && !m->g_running) pthread_cond_wait(&m->g_cond, &m->g_lock);
    }
    pthread_cond_broadcast(&m->g_cond);
}

static void group_init_locks(struct block_mount *m)
{
    pthread_mutex_init(&m->g_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->g_cond, &ca);
    pthread_condattr_destroy(&ca);
}

void bg_start(struct block_mount *m)
{
    group_init_locks(m);
    pthread_mutex_lock(&reg_lock);
    m->g_next = reg;
    reg = m;
    pthread_mutex_unlock(&reg_lock);
    /* A published root older than the interval: its writer is gone. The mount's thread
     * makes it durable at once (the program does not wait for the flushes to start). */
    struct blk_root r;
    uint64_t d;
    if (m->st.rw && m->st.vr_rw && blk_roots(&m->st, &r, &d, NULL, NULL) == 0 && r.h.commit > d) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (now - r.time_ns >= (uint64_t)m->commit_ms * 1000000ull) {
            uint64_t due = stats_now_ns() - (uint64_t)m->commit_ms * 1000000ull;
            pthread_mutex_lock(&m->g_lock);
            m->g_since = due ? due : 1;
            start_thread(m);
            pthread_mutex_unlock(&m->g_lock);
        }
    }
}

int bg_how(struct block_mount *m) { return m->commit_ms > 0 ? TX_VISIBLE : TX_DURABLE; }

void bg_committed(struct block_mount *m, int durable)
{
    pthread_mutex_lock(&m->g_lock);
    if (durable) m->g_since = 0; /* its root holds every commit published before it */
    else if (!m->g_since) {
        m->g_since = stats_now_ns();
        start_thread(m);
    }
    pthread_mutex_unlock(&m->g_lock);
}

void bg_batch_due(struct block_mount *m, uint64_t due)
{
    pthread_mutex_lock(&m->g_lock);
    if (!m->bt_due || due < m->bt_due) m->bt_due = due;
    start_thread(m);
    pthread_mutex_unlock(&m->g_lock);
}

int bg_sync(struct block_mount *m)
{
    pthread_mutex_lock(&m->g_lock);
    m->g_since = 0;
    pthread_mutex_unlock(&m->g_lock);
    return blk_make_durable(&m->st);
}

/* What this process left undurable, durable now. A durable step the mount's thread has
 * begun is waited for: the process's end would otherwise cut it short, between its
 * flush and its root write (the thread took g_since, so nothing else would redo it). */
static void bg_finish(struct block_mount *m)
{
    pthread_mutex_lock(&m->g_lock);
    while (m->g_busy && m->g_thread_on && m->g_pid == getpid()) pthread_cond_wait(&m->g_cond, &m->g_lock);
    uint64_t since = m->g_since;
    m->g_since = 0;
    pthread_mutex_unlock(&m->g_lock);
    if (since) durable_now(m);
}

void bg_stop(struct block_mount *m)
{
    pthread_mutex_lock(&reg_lock);
    for (struct block_mount **p = &reg; *p; p = &(*p)->g_next)
        if (*p == m) {
            *p = m->g_next;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    pthread_mutex_lock(&m->g_lock);
    m->g_stop = 1;
    pthread_cond_broadcast(&m->g_cond);
    int on = m->g_thread_on && m->g_pid == getpid();
    pthread_mutex_unlock(&m->g_lock);
    if (on) pthread_join(m->g_thread, NULL);
    m->g_thread_on = 0;
    bg_finish(m);
    pthread_cond_destroy(&m->g_cond);
    pthread_mutex_destroy(&m->g_lock);
}

/* Before a fork: no commit of the mount's thread under way, a batch's or a durable
 * step's. Its allocations would be inherited half done (ASan's allocator locks are not
 * fork-safe: a forked child of a python that forked 10 ms after a close, as the batch's
 * timer fired, hung in its first malloc). The thread waits at these locks meanwhile.
 * bt_lock before g_lock, as a batch's commit takes them. */
void bg_atfork_prepare(struct block_mount *m)
{
    pthread_mutex_lock(&m->bt_lock);
    pthread_mutex_lock(&m->g_lock);
    while (m->g_busy) pthread_cond_wait(&m->g_cond, &m->g_lock);
}

void bg_atfork_parent(struct block_mount *m)
{
    pthread_mutex_unlock(&m->g_lock);
    pthread_mutex_unlock(&m->bt_lock);
}

/* (The child's copies of both locks are made anew: here and in bb_atfork_child.) */
void bg_atfork_child(struct block_mount *m)
{
    /* The parent's thread makes the parent's commits durable; the child starts its own
     * when it commits. */
    pthread_mutex_init(&reg_lock, NULL);
    group_init_locks(m);
    m->g_since = 0;
    m->g_busy = 0;
    m->g_thread_on = 0;
}

int bk_block_at_exit(void)
{
    int failed = 0;
    pthread_mutex_lock(&reg_lock);
    for (struct block_mount *m = reg; m; m = m->g_next) {
        failed += bb_flush(m); /* closes waiting in a batch, committed first */
        bg_finish(m);
    }
    pthread_mutex_unlock(&reg_lock);
    return failed;
}

int bk_block_at_end(void)
{
    int failed = bk_block_at_exit();
    pthread_mutex_lock(&reg_lock);
    for (struct block_mount *m = reg; m; m = m->g_next) blk_vr_release(&m->st);
    pthread_mutex_unlock(&reg_lock);
    return failed;
}
