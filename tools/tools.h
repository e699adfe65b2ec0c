/* tools.h - the s3shim command's subcommands in files of their own. */
#ifndef S3SHIM_TOOLS_H
#define S3SHIM_TOOLS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/stats.h" /* stats_json_str */

int cmd_oplog(int argc, char **argv); /* tools/oplog.c */
int cmd_ab(int argc, char **argv);    /* tools/ab.c */
int cmd_oplog_diff(int argc, char **argv); /* tools/oldiff.c */
int cmd_replay(int argc, char **argv); /* tools/replay.c */
int cmd_run(int argc, char **argv);    /* tools/s3shim.c: execs CMD under the shim */

/* Quantile q of n sorted values (nearest rank). */
uint64_t pct_sorted(const uint64_t *v, size_t n, double q);

#endif
