/* readahead.h - the sequential-reader detector and its growing window, shared by every
 * backend that prefetches (the S3 reader and the direct:// reader).
 *
 * A read that starts where the previous one ended is sequential: each such read doubles
 * the window (from `first` up to `max`, and to at least twice its own size) that the
 * caller keeps fetched ahead; any other read resets it. The state is per open file and the caller serialises access to it.
 *
 * The S3 reader also probes how large the window needs to be (ra_probe_start): its
 * ceiling starts low and doubles only while doubling it bought throughput. Each epoch
 * (the reader consuming one ceiling's worth of bytes or taking a tenth of a second, and
 * at least 25 ms) after the first two (the warm-up) measures the rate at which the
 * file's GETs received bytes, if the reader had to wait for data in it; a ceiling's rate is the best of two such epochs (one
 * when it beat the best by half). The ceiling doubles while its rate beats the best
 * ceiling's so far by a quarter; the first that does not sends it back to the best one,
 * for good. Received, not consumed: a reader that drains a window
 * fetched in the epoch before consumes faster than the network delivers, and judged by
 * that, the window grew to `max` on any server. On a server far away (latency,
 * per-connection bandwidth) parallel GETs pay and the window grows to `max`; on a fast
 * local server it stays a few parts wide, and so does the memory it holds. */
#ifndef S3SHIM_READAHEAD_H
#define S3SHIM_READAHEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct readahead {
    off_t next;    /* where a sequential reader's next read starts */
    size_t window; /* bytes to keep fetched ahead of it */
    size_t first, max;
    /* probing (ra_probe_start); cap == max when off */
    size_t cap;          /* the window grows up to this */
    int probing;         /* 1: the ceiling may still move */
    off_t epoch_off;     /* where the current epoch began (-1: none yet) */
    uint64_t epoch_ns;   /* and when */
    uint64_t epoch_rx;   /* and how many bytes had been received by then */
    int epoch_waited;    /* the reader waited for data during it */
    double best_rate;    /* bytes per ns of the best epoch so far (0: none measured) */
    size_t best_cap;     /* the ceiling it had */
    double cap_rate;     /* the best epoch at the current ceiling */
    int epochs;          /* epochs so far */
    int cap_measures;    /* measured epochs at the current ceiling */
};

void ra_init(struct readahead *ra, size_t first, size_t max);

/* Does a read at off continue the sequence? */
static inline int ra_sequential(const struct readahead *ra, off_t off) { return off == ra->next; }

/* After a read of `done` bytes at off that ra_sequential() classed as `seq`: a sequential
 * reader's window doubles, to at least twice the read (up to the ceiling), anyone else's
 * goes back to `first`. */
void ra_advance(struct readahead *ra, off_t off, size_t done, int seq);

/* Probe the ceiling from cap0 (<= max) upwards; see above. */
void ra_probe_start(struct readahead *ra, size_t cap0);
/* A sequential read ended at `end` at time now_ns; `waited`: it had to wait for data
 * that was being fetched; `rx`: bytes the file's GETs have received so far (any count
 * that only grows). Call after ra_advance(). */
void ra_probe_note(struct readahead *ra, off_t end, uint64_t now_ns, int waited, uint64_t rx);

/* During the warm-up (before anything was measured): the ceiling goes up to cap at once.
 * The S3 reader does so for a store far away (ra_far_ceiling): the doublings from two
 * parts, one or two epochs each at a few dozen MB/s, were most of the first second. */
int ra_probe_warming(const struct readahead *ra);
void ra_probe_raise(struct readahead *ra, size_t cap);
/* The window a store ttfb_ns away needs at least: what a reader taking 3.2 GB/s (about
 * the most one reader takes on a small machine) consumes while a request waits for its
 * first byte, in whole parts; 0 below 10 ms (a server on this machine or the same
 * network, whose first bytes can take several ms while others stream: probed from the
 * start; S3 itself answers a GET in 10-30 ms). */
size_t ra_far_ceiling(uint64_t ttfb_ns, size_t part);

/* The GETs that fetch a window of `window` bytes ahead of a reader, so that the memory
 * it holds does not grow with the parallelism the probe found worth having: as many
 * GETs as the window has parts of `part` bytes, each a whole part while the window fits
 * in `mem`, else an equal share of `mem` (a multiple of 64 KiB, at least RA_SPLIT_MIN).
 * Returns one GET's length; *ahead gets the bytes to keep fetched ahead (the window, or
 * what its GETs hold once split). */
#define RA_SPLIT_MIN ((size_t)1 << 20)
size_t ra_split(size_t window, size_t part, size_t mem, size_t *ahead);

#endif
