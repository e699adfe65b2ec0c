/* ab.h - what the parts of `s3shim ab` share: arms, runs and metrics (tools/ab.c runs and
 * compares, tools/ab_oplog.c reads each run's op logs and stats files into per-run
 * figures, tools/ab_report.c writes the HTML page). A metric is anything measured once per
 * run: the five of wait4 and, from the op log, each op kind's p50/p90/p99 latency, so
 * every metric gets the same median, ratio and Mann-Whitney verdict. */
#ifndef S3SHIM_AB_H
#define S3SHIM_AB_H

#include "../core/abstat.h"
#include "../core/oplog.h"

#include <stdint.h>
#include <stdio.h>

#define MAX_ARMS 16
#define MAX_ENV 32
#define AB_MAX_EP 16
#define NMET 5 /* metrics of wait4 */
#define NQ 3   /* latency percentiles per op kind: p50, p90, p99 */
#define NMET_ALL (NMET + OL_NOPS * NQ)

enum { M_WALL, M_USER, M_SYS, M_CPU, M_RSS };

/* One endpoint's figures in a run, summed over the run's processes (stats files). */
struct ab_ep {
    char uri[256];
    uint64_t req, bytes, retries, errors;
};

struct run {
    double m[NMET];
    int status; /* wait status */
    char out_hash[65], tree_hash[65];
    uint64_t ops, rbytes, wbytes;
    uint64_t lat_n[OL_NOPS];     /* records of each op kind in the run's op log */
    double lat[OL_NOPS][NQ];     /* their p50/p90/p99 in us; NAN when lat_n is 0 */
    struct ab_ep ep[AB_MAX_EP];
    int nep;
    char dir[600];
};

struct arm {
    char name[64];
    char *mounts[32];
    int nmounts;
    char *env[MAX_ENV];
    int nenv;
    struct run *runs;
    int nruns;
};

struct cmp {
    int arm, met;
    double p, p_adj;
    struct ab_ratio r;
    enum ab_verdict v;
};

extern struct arm arms[MAX_ARMS];
extern int narms;
extern char **cmd;
extern int ab_oplog; /* runs write op logs (not --no-oplog) */

extern const double ab_q[NQ];
/* Name of metric m ("wall_s", "read_p99_us"), and its value in run r (NAN when none). */
const char *ab_met_name(int m);
double ab_met_value(const struct run *r, int m);
/* Metric m has a value in every run of every arm (latency: the op kind in every op log). */
int ab_met_present(int m);
/* Each run's values of metric m in v (a->nruns of them). */
void ab_values(const struct arm *a, int m, double *v);
/* Median over an arm's runs of metric m. */
double ab_arm_median(const struct arm *a, int m);

/* tools/ab_oplog.c: the run's op log percentiles; its endpoints from one stats JSON line. */
void ab_read_oplog(struct run *r);
void ab_read_endpoints(struct run *r, const char *line);
/* Median over an arm's runs of endpoint figures, for each URI any run saw (out: up to
 * AB_MAX_EP, returns how many). */
int ab_arm_endpoints(const struct arm *a, struct ab_ep *out);

const char *ab_verdict_word(int met, enum ab_verdict v);
int ab_results_differ(int i);
int report_html(const char *path, const struct cmp *c, int nc); /* tools/ab_report.c */

#endif
