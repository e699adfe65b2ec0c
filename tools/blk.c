/* blk.c - `s3shim blk`: format, check, ls, df and trim of a block:// store (core/block/block.h
 * does the work). The signature probe that keeps format off a device holding a
 * filesystem or a partition table lives here, with libblkid, so that the preloaded library
 * never links it. */
#define _GNU_SOURCE 1
#include "../core/block/block.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int blk_main(int argc, char **argv);

static int usage(FILE *out, int code)
{
    fputs("usage: s3shim blk format [--force] [--label NAME] DEV   make an empty store (DEV: a block device or a file)\n"
          "       s3shim blk check [--repair] [-v|--blocks] DEV      verify; exit 0 clean, 1 repaired, 4 damage\n"
          "       s3shim blk ls DEV [PREFIX]                         keys: mode, size, mtime, extents, key\n"
          "       s3shim blk df DEV                                  capacity, use, objects, free runs\n"
          "       s3shim blk trim DEV                                discard every free range (like fstrim)\n"
          "       s3shim blk crashtest [--states N] [--seed S] [--force] DEV|FILE\n"
          "                 power-loss simulation on an 8 MiB store at FILE (or the first 8 MiB of DEV)\n",
          out);
    return code;
}

/* What libblkid recognises on path: a filesystem, RAID member, partition table... 1 with
 * a description, 0 nothing, -1 cannot probe. */
static int probe_signature(const char *path, char *what, size_t len)
{
    blkid_probe pr = blkid_new_probe_from_filename(path);
    if (!pr) return -1;
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
    int r = blkid_do_safeprobe(pr);
    int found = 0;
    if (r == 0) {
        const char *type = NULL, *pt = NULL, *label = NULL;
        blkid_probe_lookup_value(pr, "TYPE", &type, NULL);
        blkid_probe_lookup_value(pr, "PTTYPE", &pt, NULL);
        blkid_probe_lookup_value(pr, "LABEL", &label, NULL);
        if (pt) snprintf(what, len, "a %s partition table", pt);
        else snprintf(what, len, "a %s signature%s%s%s", type ? type : "known", label ? " (label '" : "",
                      label ? label : "", label ? "')" : "");
        found = 1;
    } else if (r == -2) {
        snprintf(what, len, "several conflicting signatures");
        found = 1;
    } else if (r < 0) {
        found = -1;
    }
    blkid_free_probe(pr);
    return found;
}

static int cmd_format(int argc, char **argv)
{
    int force = 0;
    const char *label = NULL, *dev = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) force = 1;
        else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) label = argv[++i];
        else if (argv[i][0] == '-') return usage(stderr, 2);
        else if (!dev) dev = argv[i];
        else return usage(stderr, 2);
    }
    if (!dev) return usage(stderr, 2);
    char what[200];
    int sig = probe_signature(dev, what, sizeof what);
    if (sig > 0 && !force) {
        fprintf(stderr, "s3shim blk format: %s holds %s; not formatted (--force to overwrite it)\n", dev, what);
        return 1;
    }
    if (sig < 0 && !force) {
        fprintf(stderr, "s3shim blk format: %s: cannot probe it for signatures (%s); --force to format anyway\n", dev,
                strerror(errno ? errno : EIO));
        return 1;
    }
    char err[512];
    if (blk_format(dev, force, label, err, sizeof err) < 0) {
        fprintf(stderr, "s3shim blk format: %s\n", err);
        return 1;
    }
    if (sig > 0) fprintf(stderr, "s3shim blk format: overwrote %s on %s (--force)\n", what, dev);
    printf("formatted %s as a block:// store\n", dev);
    return 0;
}

int blk_main(int argc, char **argv)
{
    if (argc < 1) return usage(stderr, 2);
    const char *cmd = argv[0];
    char err[512];
    if (strcmp(cmd, "format") == 0) return cmd_format(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0) {
        int repair = 0, verbose = 0;
        const char *dev = NULL;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--repair") == 0) repair = 1;
            else if (strcmp(argv[i], "-v") == 0) verbose = 1;
            else if (strcmp(argv[i], "--blocks") == 0) verbose = 2; /* "block KIND ADDR" of every live metadata block */
            else if (argv[i][0] == '-' || dev) return usage(stderr, 2);
            else dev = argv[i];
        }
        if (!dev) return usage(stderr, 2);
        return blk_check(dev, repair, verbose, stdout);
    }
    if (strcmp(cmd, "ls") == 0) {
        if (argc < 2 || argc > 3) return usage(stderr, 2);
        if (blk_ls(argv[1], argc == 3 ? argv[2] : "", stdout, err, sizeof err) < 0) {
            fprintf(stderr, "s3shim blk ls: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (strcmp(cmd, "df") == 0) {
        if (argc != 2) return usage(stderr, 2);
        if (blk_df(argv[1], stdout, err, sizeof err) < 0) {
            fprintf(stderr, "s3shim blk df: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (strcmp(cmd, "trim") == 0) {
        if (argc != 2) return usage(stderr, 2);
        if (blk_trim(argv[1], stdout, err, sizeof err) < 0) {
            fprintf(stderr, "s3shim blk trim: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (strcmp(cmd, "crashtest") == 0) {
        int states = 1000, force = 0;
        unsigned seed = 0;
        const char *dev = NULL;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--states") == 0 && i + 1 < argc) states = atoi(argv[++i]);
            else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = (unsigned)strtoul(argv[++i], NULL, 0);
            else if (strcmp(argv[i], "--force") == 0) force = 1;
            else if (argv[i][0] == '-' || dev) return usage(stderr, 2);
            else dev = argv[i];
        }
        if (!dev || states < 1) return usage(stderr, 2);
        return blk_crashtest(dev, states, seed, force, stdout);
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0) return usage(stdout, 0);
    fprintf(stderr, "s3shim blk: unknown command '%s'\n", cmd);
    return usage(stderr, 2);
}
