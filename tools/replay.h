/* replay.h - `s3shim replay`: the plan (every recorded op in one global order, with the
 * replay path and what it must wait for) shared by the replay itself (replay.c) and
 * --prepare (replay_prep.c), which builds the files the log starts from. */
#ifndef S3SHIM_REPLAY_H
#define S3SHIM_REPLAY_H

#include "olread.h"

#include <stdatomic.h>
#include <stdint.h>

struct rp_op {
    const struct ol_rec *r;
    const char *path;  /* replay path (remapped), or NULL */
    const char *path2; /* rename: the new path (replay), or NULL when the log has none */
    const char *name;  /* meta: the call */
    int32_t pi, pi2;   /* ids of path and path2 (index in rp_plan.paths), -1 */
    int32_t worker;
    int32_t gen;       /* descriptor ops: the open whose descriptor it uses (index in gens), -1: by path;
                        * an open or a dup: the descriptor it makes */
    int32_t src_gen;   /* a dup: the descriptor it copies, -1 */
    int32_t dep;       /* an earlier op (index) on the same path by another thread, done first; -1 */
};

/* One descriptor from its open to its close. */
struct rp_gen {
    int32_t open_op, uses; /* uses: ops on it other than its open and close */
    atomic_int done, fd, ready;
};

struct rp_plan {
    struct ol_set set;
    struct rp_op *ops;
    size_t nops;
    struct rp_gen *gens;
    size_t ngens;
    size_t nworkers, nproc;
    char **paths; /* remapped paths, owned */
    size_t npaths;
    uint64_t rec0, rec_end; /* first start and last end of the recording */
};

/* PREFIX=NEW rewrites of recorded paths (--remap). */
struct rp_remap {
    const char *from[32], *to[32];
    int n;
};

/* Load LOG and order it; 0, or -1 with one line in err. */
int rp_plan_build(struct rp_plan *p, const char *log, const struct rp_remap *rm, char *err, size_t errlen);
void rp_plan_free(struct rp_plan *p);
/* Create the files and directories the log starts from and remove what it creates, on
 * paths strictly under the mount prefixes given (replay_prep.c); 0, or -1 (said on stderr). */
int rp_prepare(const struct rp_plan *p, char *const *prefixes, int nprefixes);
/* Synthesised data for writes: a fixed pattern of at least len bytes. */
const char *rp_pattern(size_t len);

#endif
