/* blk_admin.c - what `s3shim blk` does to a store as a whole: format, check, ls, df.
 *
 * format writes commit 1 by hand (the bitmap, its directory and an empty leaf in the
 * metadata zone; root slot 1; the superblock and its copy). check reads everything
 * reachable from the newest root and proves the free map: each block referenced once,
 * every set bit referenced (or pending free), every referenced block set. The signature
 * probe (libblkid) that keeps format off a device holding something is the command's
 * (tools/blk.c): the library loaded into every program does not link libblkid. */
#include "block.h"

#include "blk.h"

#include "../sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

int blk_format(const char *path, int force, const char *label, char *err, size_t errlen)
{
    return blk_format_size(path, force, label, 0, err, errlen);
}

int blk_format_size(const char *path, int force, const char *label, uint64_t limit, char *err, size_t errlen)
{
    struct stat st;
    if (sys.fstatat(AT_FDCWD, path, &st, 0) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    /* O_EXCL on a block device: refused while mounted or held by another user. */
    int fd = sys.open(path, O_RDWR | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s%s", path, strerror(e), e == EBUSY ? " (mounted or in use)" : "");
        return -e;
    }
    uint64_t size = (uint64_t)st.st_size;
    unsigned sector = 512;
    int r = 0;
    if (S_ISBLK(st.st_mode)) {
        int ss = 512;
        if (sys.ioctl(fd, BLKGETSIZE64, &size) < 0 || sys.ioctl(fd, BLKSSZGET, &ss) < 0) {
            r = -errno;
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        sector = (unsigned)ss;
    } else if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        snprintf(err, errlen, "%s: not a block device or a regular file", path);
        goto out;
    }
    if (sector > BLK_BS || BLK_BS % sector) {
        r = -EINVAL;
        snprintf(err, errlen, "%s: sector size %u is not supported (block size %u)", path, sector, BLK_BS);
        goto out;
    }
    if (limit && size > limit) size = limit;
    uint64_t nb = size / BLK_BS;
    if (nb < 256) {
        r = -ENOSPC;
        snprintf(err, errlen, "%s: too small for a store (%llu bytes; at least 1 MiB)", path, (unsigned long long)size);
        goto out;
    }
    if (!force) { /* already one of ours? */
        struct blk_store old;
        char e2[256];
        if (blk_open(&old, path, 0, e2, sizeof e2) == 0) {
            struct blk_root rt;
            int have = blk_newest_root(&old, &rt, NULL) == 0;
            blk_close(&old);
            r = -EEXIST;
            snprintf(err, errlen, "%s holds a block:// store%s%llu objects); --force to format it anyway", path,
                     have ? " (" : " (damaged, ", have ? (unsigned long long)rt.objects : 0ull);
            goto out;
        }
    }
    uint64_t meta = nb / 32 < 64 ? 64 : nb / 32;
    uint64_t nbm = (nb + BLK_BITS_PER_BM - 1) / BLK_BITS_PER_BM;
    uint64_t ndir = (nbm + BLK_ADDRS_PER_DIR - 1) / BLK_ADDRS_PER_DIR;
    if (ndir > BLK_ROOT_DIRS || 3 + nbm + ndir + 1 >= 3 + meta) {
        r = -EFBIG;
        snprintf(err, errlen, "%s: too large for format version %d", path, BLK_VERSION);
        goto out;
    }
    struct blk_super *sb = aligned_alloc(64, BLK_BS);
    uint8_t *b = aligned_alloc(64, BLK_BS);
    if (!sb || !b) {
        free(sb);
        free(b);
        r = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memset(sb, 0, BLK_BS);
    uint8_t uuid[16];
    if (getrandom(uuid, sizeof uuid, 0) != (ssize_t)sizeof uuid) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(uuid, &ts, 16);
    }
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    sb->version = BLK_VERSION;
    sb->block_size = BLK_BS;
    sb->sector_size = sector;
    sb->dev_blocks = nb;
    sb->meta_start = 3;
    sb->data_start = 3 + meta;
    sb->data_end = nb - 1;
    sb->created_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    snprintf(sb->label, sizeof sb->label, "%s", label ? label : "");
    /* Commit 1: bitmap blocks at 3.., directory blocks after them, then the empty leaf. */
    uint64_t bm0 = 3, dir0 = bm0 + nbm, leaf = dir0 + ndir, used_meta = 4 + nbm + ndir + 1;
    for (uint64_t i = 0; i < nbm && !r; i++) {
        memset(b, 0, BLK_BS);
        for (uint64_t k = i * BLK_BITS_PER_BM; k < (i + 1) * BLK_BITS_PER_BM && k < nb; k++) {
            int set = k < 3 || k == nb - 1 || (k >= 3 && k <= leaf);
            if (set) b[BLK_HDR + (k % BLK_BITS_PER_BM) / 8] |= (uint8_t)(1u << (k % 8));
        }
        ((struct blk_hdr *)b)->count = (uint32_t)i;
        blk_seal(b, BK_BITMAP, 1, bm0 + i, uuid);
        ssize_t w = sys.pwrite(fd, b, BLK_BS, (off_t)((bm0 + i) * BLK_BS));
        if (w != BLK_BS) r = w < 0 ? -errno : -EIO;
    }
    for (uint64_t j = 0; j < ndir && !r; j++) {
        memset(b, 0, BLK_BS);
        for (uint64_t i = j * BLK_ADDRS_PER_DIR; i < nbm && i < (j + 1) * BLK_ADDRS_PER_DIR; i++) {
            uint64_t a = bm0 + i;
            memcpy(b + BLK_HDR + (i % BLK_ADDRS_PER_DIR) * 8, &a, 8);
        }
        ((struct blk_hdr *)b)->count = (uint32_t)j;
        blk_seal(b, BK_DIR, 1, dir0 + j, uuid);
        ssize_t w = sys.pwrite(fd, b, BLK_BS, (off_t)((dir0 + j) * BLK_BS));
        if (w != BLK_BS) r = w < 0 ? -errno : -EIO;
    }
    if (!r) {
        memset(b, 0, BLK_BS);
        blk_seal(b, BK_LEAF, 1, leaf, uuid);
        if (sys.pwrite(fd, b, BLK_BS, (off_t)(leaf * BLK_BS)) != BLK_BS) r = -EIO;
    }
    if (!r) { /* slot 0 empty, slot 1 commit 1 */
        memset(b, 0, BLK_BS);
        if (sys.pwrite(fd, b, BLK_BS, BLK_BS) != BLK_BS) r = -EIO;
        struct blk_root *rt = (struct blk_root *)b;
        rt->tree = leaf;
        rt->height = 1;
        rt->ndir = (uint32_t)ndir;
        for (uint64_t j = 0; j < ndir; j++) rt->dir[j] = dir0 + j;
        rt->used = used_meta;
        rt->meta_used = used_meta;
        rt->next_ino = 2;
        rt->time_ns = sb->created_ns;
        rt->top_mtime_ns = (int64_t)sb->created_ns;
        rt->top_mode = 0755;
        blk_seal(b, BK_ROOT, 1, 2, uuid);
        if (!r && sys.pwrite(fd, b, BLK_BS, 2 * BLK_BS) != BLK_BS) r = -EIO;
    }
    if (!r && sys.fdatasync(fd) < 0) r = -errno;
    if (!r) { /* the superblocks last: until they are there this is not a store */
        blk_seal(sb, BK_SUPER, 0, nb - 1, uuid);
        if (sys.pwrite(fd, sb, BLK_BS, (off_t)((nb - 1) * BLK_BS)) != BLK_BS) r = -EIO;
        blk_seal(sb, BK_SUPER, 0, 0, uuid);
        if (!r && sys.pwrite(fd, sb, BLK_BS, 0) != BLK_BS) r = -EIO;
        if (!r && sys.fdatasync(fd) < 0) r = -errno;
    }
    if (r) snprintf(err, errlen, "%s: writing the store: %s", path, strerror(-r));
    free(sb);
    free(b);
out:
    sys.close(fd);
    return r;
}

/* --- ls, df ------------------------------------------------------------------------------ */

int blk_ls(const char *path, const char *prefix, FILE *out, char *err, size_t errlen)
{
    struct blk_store s;
    int r = blk_open(&s, path, 0, err, errlen);
    if (r < 0) return r;
    struct blk_obj *o = malloc(sizeof *o);
    if (!o) {
        blk_close(&s);
        return -ENOMEM;
    }
    size_t pl = strlen(prefix);
    char *after = strdup(prefix);
    size_t al = pl;
    int incl = 1;
    while (after && (r = bt_next(&s, after, al, incl, o)) == 1) {
        if (o->klen < pl || memcmp(o->key, prefix, pl) != 0) break;
        time_t t = (time_t)(o->mtime_ns / 1000000000);
        struct tm tm;
        char ts[32];
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
        fprintf(out, "%c%04o %12llu %s %2d %s\n", S_ISDIR(o->mode) ? 'd' : '-', o->mode & 07777,
                (unsigned long long)o->size, ts, o->next, o->key);
        free(after);
        after = strdup(o->key);
        al = o->klen;
        incl = 0;
    }
    if (r < 0) snprintf(err, errlen, "%s: %s", path, strerror(-r));
    free(after);
    free(o);
    blk_close(&s);
    return r < 0 ? r : 0;
}

int blk_df(const char *path, FILE *out, char *err, size_t errlen)
{
    struct blk_store s;
    int r = blk_open(&s, path, 0, err, errlen);
    if (r < 0) return r;
    struct blk_root rt;
    uint64_t fr, runs, longest;
    struct blk_bm_cursor *c = blk_bm_cursor_new(&s);
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", path);
        blk_close(&s);
        return -ENOMEM;
    }
    /* Free runs of the data zone: how fragmented free space is. A commit by another process
     * meanwhile may free the bitmap blocks of the root read (-EAGAIN): then again. */
    for (int tries = 0; tries < 8; tries++) {
        if ((r = blk_free_blocks(&s, &fr, &rt)) < 0) break;
        c->r = &rt;
        c->loaded = 0;
        runs = longest = 0;
        uint64_t cur = 0;
        for (uint64_t k = s.sb.data_start; k < s.sb.data_end; k++) {
            int set;
            if ((r = blk_bm_test(c, k, &set)) < 0) break;
            if (!set) {
                if (!cur) runs++;
                if (++cur > longest) longest = cur;
            } else {
                cur = 0;
            }
        }
        if (r != -EAGAIN) break;
    }
    free(c);
    if (r < 0) {
        snprintf(err, errlen, "%s: no valid root or free map (%s; run s3shim blk check)", path, strerror(-r));
        blk_close(&s);
        return r;
    }
    uint64_t data = s.sb.data_end - s.sb.data_start, meta = s.sb.data_start - s.sb.meta_start;
    fprintf(out, "device        %s\n", path);
    fprintf(out, "capacity      %llu bytes (%llu blocks of %u for data)\n", (unsigned long long)(data * BLK_BS),
            (unsigned long long)data, BLK_BS);
    fprintf(out, "used          %llu bytes (%.1f%%)\n", (unsigned long long)((data - fr) * BLK_BS),
            data ? 100.0 * (double)(data - fr) / (double)data : 0.0);
    fprintf(out, "free          %llu bytes in %llu runs, longest %llu bytes\n", (unsigned long long)(fr * BLK_BS),
            (unsigned long long)runs, (unsigned long long)(longest * BLK_BS));
    uint64_t zone_used = rt.meta_used > 4 ? rt.meta_used - 4 : 0; /* less the superblocks and roots */
    fprintf(out, "metadata      %llu of %llu blocks\n", (unsigned long long)zone_used, (unsigned long long)meta);
    fprintf(out, "objects       %llu\n", (unsigned long long)rt.objects);
    fprintf(out, "directories   %llu\n", (unsigned long long)rt.dirs);
    struct blk_root dr;
    uint64_t durable = rt.h.commit;
    blk_roots(&s, &dr, &durable, NULL, NULL);
    if (durable < rt.h.commit)
        fprintf(out, "commit        %llu (durable: %llu; group commit)\n", (unsigned long long)rt.h.commit,
                (unsigned long long)durable);
    else
        fprintf(out, "commit        %llu\n", (unsigned long long)rt.h.commit);
    fprintf(out, "index height  %u\n", rt.height);
    char vr[PATH_MAX];
    blk_vr_name(&s, vr, sizeof vr);
    fprintf(out, "visible roots %s\n", vr);
    blk_close(&s);
    return 0;
}
