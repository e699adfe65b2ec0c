/* readahead.c - see readahead.h */
#include "readahead.h"

/* An epoch lasts at least this long: on a fast server one ceiling's worth of bytes takes
 * a few milliseconds, too few to tell a better rate from the machine's noise. */
#define RA_EPOCH_MIN_NS 25000000ull
/* ... and at most this long, unless a ceiling's worth of bytes came sooner: on a server
 * far away a ceiling's worth took a quarter of a second or more at the first ceilings
 * (16 MiB at 70 MB/s), and the ramp to the window such a server needs took the first
 * 300 MiB of the read; a tenth of a second of bytes received measures its rate as well. */
#define RA_EPOCH_MAX_NS 100000000ull
/* Epochs before the first measure. One was not enough: the second still paid the first
 * touch of chunk memory the window had not used yet, measured slower than what a larger
 * ceiling then got, and the ceiling grew on any server. */
#define RA_WARMUP_EPOCHS 2
/* Measured epochs per ceiling, its rate the best of them: with one, a single slow epoch
 * of the baseline (another process's burst on a shared machine) made the next ceiling
 * look a quarter faster, and on loopback the window grew to 64-128 MiB in half the runs,
 * holding that much more memory and spending up to twice the CPU per GiB. */
#define RA_MEASURES 2

void ra_init(struct readahead *ra, size_t first, size_t max)
{
    ra->next = 0;
    ra->first = first;
    ra->max = max < first ? first : max;
    ra->window = first;
    ra->cap = ra->max;
    ra->probing = 0;
}

void ra_advance(struct readahead *ra, off_t off, size_t done, int seq)
{
    if (seq && done) { /* doubled, and at least twice the read: a reader taking a part at
                        * a time (cat, whose buffer is st_blksize) had one GET in flight
                        * for its first reads, each a round trip to a far store */
        size_t w = ra->window * 2 > 2 * done ? ra->window * 2 : 2 * done;
        ra->window = w > ra->cap ? ra->cap : w;
    }
    else if (!seq)
        ra->window = ra->first;
    ra->next = off + (off_t)done;
}

void ra_probe_start(struct readahead *ra, size_t cap0)
{
    ra->cap = cap0 < ra->first ? ra->first : cap0 > ra->max ? ra->max : cap0;
    if (ra->window > ra->cap) ra->window = ra->cap;
    ra->probing = ra->cap < ra->max;
    ra->epoch_off = -1;
    ra->epoch_waited = 0;
    ra->best_rate = 0;
    ra->best_cap = 0;
    ra->cap_rate = 0;
    ra->cap_measures = 0;
}

static void set_cap(struct readahead *ra, size_t cap)
{
    ra->cap = cap > ra->max ? ra->max : cap;
    if (ra->window > ra->cap) ra->window = ra->cap;
}

void ra_probe_note(struct readahead *ra, off_t end, uint64_t now_ns, int waited, uint64_t rx)
{
    if (!ra->probing) return;
    if (ra->epoch_off < 0 || end < ra->epoch_off) { /* the first read: the warm-up epoch starts */
        ra->epoch_off = end;
        ra->epoch_ns = now_ns;
        ra->epoch_rx = rx;
        ra->epoch_waited = 0;
        ra->epochs = 0;
        return;
    }
    ra->epoch_waited |= waited;
    uint64_t took = now_ns - ra->epoch_ns;
    if (took < RA_EPOCH_MIN_NS || ((size_t)(end - ra->epoch_off) < ra->cap && took < RA_EPOCH_MAX_NS)) return;
    double rate = now_ns > ra->epoch_ns ? (double)(rx - ra->epoch_rx) / (double)(now_ns - ra->epoch_ns) : 0;
    if (ra->epochs++ < RA_WARMUP_EPOCHS) {
        /* the warm-up: the pipeline fills, with small GETs in parallel, and the chunk
         * memory is touched for the first time (page faults): not a measure */
    } else if (!ra->epoch_waited) {
        /* the data was there before the reader: a larger window cannot make it faster */
    } else {
        if (rate > ra->cap_rate) ra->cap_rate = rate;
        ra->cap_measures++;
        /* a ceiling's rate is known after RA_MEASURES epochs, or after one that beat the
         * best so far by half (a server far away: each doubling nearly doubles the rate,
         * and the ramp is not slowed; the baseline is always measured in full) */
        int clear = ra->best_rate > 0 && ra->cap_rate >= ra->best_rate * 1.5;
        if (clear || ra->cap_measures >= RA_MEASURES) {
            int better = ra->cap_rate >= ra->best_rate * 1.25; /* (the first always) */
            if (better) {
                ra->best_rate = ra->cap_rate;
                ra->best_cap = ra->cap;
            }
            if (better && ra->cap < ra->max) {
                set_cap(ra, ra->cap * 2);
            } else { /* no better, or the largest: back to the best ceiling, and stay */
                set_cap(ra, ra->best_cap);
                ra->probing = 0;
            }
            ra->cap_rate = 0;
            ra->cap_measures = 0;
        }
    }
    ra->epoch_off = end;
    ra->epoch_ns = now_ns;
    ra->epoch_rx = rx;
    ra->epoch_waited = 0;
}

int ra_probe_warming(const struct readahead *ra)
{
    return ra->probing && (ra->epoch_off < 0 || ra->epochs < RA_WARMUP_EPOCHS);
}

void ra_probe_raise(struct readahead *ra, size_t cap)
{
    if (ra_probe_warming(ra) && cap > ra->cap) set_cap(ra, cap);
}

size_t ra_far_ceiling(uint64_t ttfb_ns, size_t part)
{
    if (ttfb_ns < 10000000ull || !part) return 0;
    double bytes = (double)ttfb_ns * 3.2; /* 3.2 bytes per ns */
    size_t parts = (size_t)(bytes / (double)part + 0.999);
    return (parts < 2 ? 2 : parts) * part;
}

size_t ra_split(size_t window, size_t part, size_t mem, size_t *ahead)
{
    if (window <= mem) { /* whole parts: the plain window */
        *ahead = window;
        return window < part ? window : part;
    }
    size_t gets = (window + part - 1) / part;
    size_t len = mem / gets & ~(((size_t)64 << 10) - 1);
    if (len < RA_SPLIT_MIN) len = RA_SPLIT_MIN;
    if (len > part) len = part;
    *ahead = gets * len;
    return len;
}
