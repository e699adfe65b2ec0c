/* abstat.h - the statistics of `s3shim ab`: pure functions on samples of one metric.
 *
 * A metric (wall time, CPU, bytes...) is measured N times per arm. Two arms are compared
 * by the ratio of their typical values, with a 95% confidence interval, and a two-sided
 * Mann-Whitney U test; with more than two arms the p values are Holm-corrected. The ratio
 * is the Hodges-Lehmann estimate on the logarithms (the median of all pairwise log
 * ratios), its interval the distribution-free one from the U statistic's quantiles. No
 * normality is assumed: run times are skewed and have outliers. */
#ifndef S3SHIM_ABSTAT_H
#define S3SHIM_ABSTAT_H

#include <stddef.h>

double ab_median(const double *v, size_t n);
/* Median absolute deviation, scaled by 1.4826 (a standard deviation for normal data). */
double ab_mad(const double *v, size_t n);
/* Two-sided p value of the Mann-Whitney U test of a against b (exact without ties when
 * both samples are small, else the normal approximation with tie and continuity
 * corrections). 1.0 when either sample is empty. */
double ab_mwu_p(const double *a, size_t na, const double *b, size_t nb);

struct ab_ratio {
    double ratio, lo, hi; /* b / a, and its 95% interval */
};
/* Hodges-Lehmann ratio b/a with a 95% interval. Values must be > 0. */
struct ab_ratio ab_hl_ratio(const double *a, size_t na, const double *b, size_t nb);
/* Holm's step-down correction of n p values (adj[i] for p[i]). */
void ab_holm(const double *p, size_t n, double *adj);

enum ab_verdict { AB_SAME = 0, AB_LOWER = -1, AB_HIGHER = 1 };
/* b against a: a difference only when p < alpha and |ratio - 1| >= min_rel. */
enum ab_verdict ab_verdict(double p, double ratio, double alpha, double min_rel);
/* Samples farther than k scaled MADs from the median (count; flags[i] set if given). */
size_t ab_outliers(const double *v, size_t n, double k, int *flags);

#endif
