/* abstat.c - see abstat.h */
#include "abstat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_sorted(const double *s, size_t n)
{
    if (!n) return NAN;
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

double ab_median(const double *v, size_t n)
{
    if (!n) return NAN;
    double *s = malloc(n * sizeof *s);
    if (!s) return NAN;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_d);
    double m = median_sorted(s, n);
    free(s);
    return m;
}

double ab_mad(const double *v, size_t n)
{
    if (!n) return NAN;
    double m = ab_median(v, n);
    double *d = malloc(n * sizeof *d);
    if (!d) return NAN;
    for (size_t i = 0; i < n; i++) d[i] = fabs(v[i] - m);
    double r = 1.4826 * ab_median(d, n);
    free(d);
    return r;
}

/* Exact P(U <= u) for sample sizes m, n without ties: counts of arrangements by U. */
static double exact_cdf(size_t m, size_t n, double u)
{
    size_t maxu = m * n;
    /* f[i][j][k]: ways with i of a, j of b, U = k; rolling over i with a 2-D table. */
    double *f = calloc((n + 1) * (maxu + 1) * (m + 1), sizeof *f);
    if (!f) return NAN;
#define F(i, j, k) f[((i) * (n + 1) + (j)) * (maxu + 1) + (k)]
    for (size_t i = 0; i <= m; i++)
        for (size_t j = 0; j <= n; j++)
            for (size_t k = 0; k <= maxu; k++) {
                if (i == 0 || j == 0) {
                    F(i, j, k) = k == 0;
                    continue;
                }
                /* the largest value is from a (adds j to U) or from b */
                double w = k >= j ? F(i - 1, j, k - j) : 0;
                F(i, j, k) = w + F(i, j - 1, k);
            }
    double total = 0, below = 0;
    for (size_t k = 0; k <= maxu; k++) {
        total += F(m, n, k);
        if ((double)k <= u + 1e-9) below += F(m, n, k);
    }
#undef F
    free(f);
    return below / total;
}

double ab_mwu_p(const double *a, size_t na, const double *b, size_t nb)
{
    if (!na || !nb) return 1.0;
    size_t n = na + nb;
    struct item {
        double v;
        int from_a;
    } *it = malloc(n * sizeof *it);
    double *rank = malloc(n * sizeof *rank);
    if (!it || !rank) {
        free(it);
        free(rank);
        return NAN;
    }
    for (size_t i = 0; i < na; i++) it[i] = (struct item){a[i], 1};
    for (size_t i = 0; i < nb; i++) it[na + i] = (struct item){b[i], 0};
    /* insertion sort: samples are small */
    for (size_t i = 1; i < n; i++) {
        struct item x = it[i];
        size_t j = i;
        for (; j > 0 && it[j - 1].v > x.v; j--) it[j] = it[j - 1];
        it[j] = x;
    }
    double ties = 0;
    int any_tie = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && it[j + 1].v == it[i].v) j++;
        double r = (double)(i + j) / 2 + 1;
        for (size_t k = i; k <= j; k++) rank[k] = r;
        double t = (double)(j - i + 1);
        if (t > 1) any_tie = 1;
        ties += t * t * t - t;
        i = j + 1;
    }
    double ra = 0;
    for (size_t i = 0; i < n; i++)
        if (it[i].from_a) ra += rank[i];
    free(it);
    free(rank);
    double ua = ra - (double)na * (double)(na + 1) / 2, ub = (double)na * (double)nb - ua;
    double u = ua < ub ? ua : ub;
    double p;
    if (!any_tie && na <= 25 && nb <= 25) {
        p = 2 * exact_cdf(na, nb, u);
    } else {
        double mu = (double)na * (double)nb / 2;
        double var = (double)na * (double)nb / 12 * (((double)n + 1) - ties / ((double)n * ((double)n - 1)));
        if (var <= 0) return 1.0;
        double z = (fabs(u - mu) - 0.5) / sqrt(var);
        if (z < 0) z = 0;
        p = erfc(z / sqrt(2.0));
    }
    return p > 1 ? 1 : p;
}

struct ab_ratio ab_hl_ratio(const double *a, size_t na, const double *b, size_t nb)
{
    struct ab_ratio r = {NAN, NAN, NAN};
    size_t m = na * nb;
    if (!m) return r;
    double *d = malloc(m * sizeof *d);
    if (!d) return r;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) d[i * nb + j] = log(b[j]) - log(a[i]);
    qsort(d, m, sizeof *d, cmp_d);
    r.ratio = exp(median_sorted(d, m));
    /* distribution-free interval: order statistics k+1 and m-k of the differences */
    double s = sqrt((double)na * (double)nb * (double)(na + nb + 1) / 12);
    double kf = floor((double)m / 2 - 1.959964 * s);
    size_t k = kf < 0 ? 0 : (size_t)kf;
    if (k >= m) k = m - 1;
    r.lo = exp(d[k]);
    r.hi = exp(d[m - 1 - k]);
    free(d);
    return r;
}

void ab_holm(const double *p, size_t n, double *adj)
{
    size_t *o = malloc(n * sizeof *o);
    if (!o) {
        for (size_t i = 0; i < n; i++) adj[i] = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) o[i] = i;
    for (size_t i = 1; i < n; i++) /* order by p */
        for (size_t j = i; j > 0 && p[o[j - 1]] > p[o[j]]; j--) {
            size_t t = o[j];
            o[j] = o[j - 1];
            o[j - 1] = t;
        }
    double run = 0;
    for (size_t i = 0; i < n; i++) {
        double v = p[o[i]] * (double)(n - i);
        if (v > 1) v = 1;
        if (v < run) v = run; /* monotone */
        run = v;
        adj[o[i]] = v;
    }
    free(o);
}

enum ab_verdict ab_verdict(double p, double ratio, double alpha, double min_rel)
{
    if (!(p < alpha) || !(fabs(ratio - 1) >= min_rel)) return AB_SAME;
    return ratio < 1 ? AB_LOWER : AB_HIGHER;
}

size_t ab_outliers(const double *v, size_t n, double k, int *flags)
{
    double m = ab_median(v, n), s = ab_mad(v, n);
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        int out = s > 0 ? fabs(v[i] - m) > k * s : 0;
        if (flags) flags[i] = out;
        c += (size_t)out;
    }
    return c;
}
