/* ab_report.c - `s3shim ab --report FILE.html`: one self-contained page (inline SVG, no
 * scripts, nothing fetched) a reader can open anywhere: the verdicts, the arms with their
 * latency percentiles and endpoints, each run's wall time, and a latency CDF per op kind. */
#define _GNU_SOURCE 1
#include "ab.h"
#include "olread.h"
#include "tools.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>


static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

static void html_esc(FILE *o, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", o);
        else if (*s == '>') fputs("&gt;", o);
        else if (*s == '&') fputs("&amp;", o);
        else if (*s == '"') fputs("&quot;", o);
        else fputc(*s, o);
    }
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Latency CDF of one op kind, one curve per arm, from every run's op log (log10 x axis). */
static void svg_cdf(FILE *o, unsigned op)
{
    double *lat[MAX_ARMS] = {0};
    size_t n[MAX_ARMS] = {0}, cap[MAX_ARMS] = {0};
    double lo = INFINITY, hi = 0;
    for (int k = 0; k < narms; k++)
        for (int r = 0; r < arms[k].nruns; r++) {
            char p[700], err[600];
            snprintf(p, sizeof p, "%s/oplog", arms[k].runs[r].dir);
            struct ol_set s = {0};
            if (ol_load(&s, p, err, sizeof err) == 0)
                for (size_t i = 0; i < s.nrec; i++) {
                    if (s.rec[i].r.op != op) continue;
                    if (n[k] == cap[k]) {
                        cap[k] = cap[k] ? 2 * cap[k] : 1024;
                        lat[k] = realloc(lat[k], cap[k] * sizeof(double));
                    }
                    double us = (double)s.rec[i].r.lat / 1e3;
                    if (us < 0.01) us = 0.01;
                    lat[k][n[k]++] = us;
                    if (us < lo) lo = us;
                    if (us > hi) hi = us;
                }
            ol_free(&s);
        }
    int any = 0;
    for (int k = 0; k < narms; k++) any |= n[k] > 0;
    if (any) {
        double l0 = floor(log10(lo)), l1 = ceil(log10(hi));
        if (l1 <= l0) l1 = l0 + 1;
        const double W = 560, H = 260, X0 = 50, Y0 = 20;
        fprintf(o, "<figure><figcaption>%s latency, CDF per arm (all runs)</figcaption>\n", oplog_op_name(op));
        fprintf(o, "<svg class=\"cdf\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", W + 160,
                H + 60);
        fprintf(o, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#888\"/>\n", X0, Y0,
                W, H);
        for (double d = l0; d <= l1; d++) {
            double x = X0 + (d - l0) / (l1 - l0) * W;
            fprintf(o, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>", x, Y0, x, Y0 + H);
            fprintf(o, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">%g us</text>\n", x, Y0 + H + 15,
                    pow(10, d));
        }
        for (int q = 0; q <= 4; q++)
            fprintf(o, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%d%%</text>\n", X0 - 4,
                    Y0 + H - q * H / 4 + 4, q * 25);
        for (int k = 0; k < narms; k++) {
            if (!n[k]) continue;
            qsort(lat[k], n[k], sizeof(double), cmp_dbl);
            fprintf(o, "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"%s\" points=\"", colors[k % 8]);
            size_t step = n[k] > 400 ? n[k] / 400 : 1;
            for (size_t i = 0; i < n[k]; i += step)
                fprintf(o, "%.1f,%.1f ", X0 + (log10(lat[k][i]) - l0) / (l1 - l0) * W,
                        Y0 + H - (double)(i + 1) / (double)n[k] * H);
            fprintf(o, "%.1f,%.1f\"/>\n", X0 + (log10(lat[k][n[k] - 1]) - l0) / (l1 - l0) * W, Y0);
            fprintf(o, "<text x=\"%.0f\" y=\"%d\" font-size=\"12\" fill=\"%s\">", X0 + W + 6, 40 + 16 * k, colors[k % 8]);
            html_esc(o, arms[k].name);
            fprintf(o, " (%zu)</text>\n", n[k]);
        }
        fputs("</svg></figure>\n", o);
    }
    for (int k = 0; k < narms; k++) free(lat[k]);
}

/* Wall time of every run, per arm, in run order. */
static void svg_runs(FILE *o)
{
    double hi = 0;
    int runs = arms[0].nruns;
    for (int k = 0; k < narms; k++)
        for (int r = 0; r < arms[k].nruns; r++)
            if (arms[k].runs[r].m[M_WALL] > hi) hi = arms[k].runs[r].m[M_WALL];
    if (hi <= 0) hi = 1;
    const double W = 560, H = 220, X0 = 60, Y0 = 20;
    fputs("<figure><figcaption>wall time of each run (s)</figcaption>\n", o);
    fprintf(o, "<svg class=\"runs\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\">\n", W + 160, H + 50);
    fprintf(o, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#888\"/>\n", X0, Y0, W, H);
    for (int q = 0; q <= 4; q++)
        fprintf(o, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n", X0 - 4,
                Y0 + H - q * H / 4 + 4, hi * q / 4);
    for (int k = 0; k < narms; k++) {
        for (int r = 0; r < arms[k].nruns; r++) {
            double x = X0 + (r + 0.5) / runs * W + (k - (narms - 1) / 2.0) * 6;
            double y = Y0 + H - arms[k].runs[r].m[M_WALL] / hi * H;
            fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x, y, colors[k % 8]);
        }
        fprintf(o, "<text x=\"%.0f\" y=\"%d\" font-size=\"12\" fill=\"%s\">", X0 + W + 6, 40 + 16 * k, colors[k % 8]);
        html_esc(o, arms[k].name);
        fputs("</text>\n", o);
    }
    fputs("</svg></figure>\n", o);
}

/* Latency percentiles per op kind, the arms side by side (medians over runs of each
 * run's percentile, as in the text table). */
static void html_latency(FILE *o)
{
    int rows = 0;
    for (unsigned op = OL_OPEN; op < OL_NOPS; op++) {
        int seen = 0;
        for (int k = 0; k < narms; k++) seen |= isfinite(ab_arm_median(&arms[k], NMET + (int)op * NQ));
        if (!seen) continue;
        if (!rows++) {
            fputs("<h2>Latency percentiles (us)</h2>\n<table id=\"latency\"><tr><th rowspan=\"2\">op</th>", o);
            for (int k = 0; k < narms; k++) {
                fprintf(o, "<th colspan=\"%d\" style=\"color:%s\">", NQ, colors[k % 8]);
                html_esc(o, arms[k].name);
                fputs("</th>", o);
            }
            fputs("</tr>\n<tr>", o);
            for (int k = 0; k < narms; k++)
                for (int q = 0; q < NQ; q++) fprintf(o, "<th>p%02.0f</th>", 100 * ab_q[q]);
            fputs("</tr>\n", o);
        }
        fprintf(o, "<tr><td>%s</td>", oplog_op_name(op));
        for (int k = 0; k < narms; k++)
            for (int q = 0; q < NQ; q++) {
                double v = ab_arm_median(&arms[k], NMET + (int)op * NQ + q);
                if (isfinite(v)) fprintf(o, "<td>%.1f</td>", v);
                else fputs("<td>-</td>", o);
            }
        fputs("</tr>\n", o);
    }
    if (rows) fputs("</table>\n<p>Each run's percentile over all its processes' op log records, median over the arm's runs.</p>\n", o);
}

/* Requests, bytes, retries and errors per endpoint and arm (stats files). */
static void html_endpoints(FILE *o)
{
    int rows = 0;
    for (int k = 0; k < narms; k++) {
        struct ab_ep e[AB_MAX_EP];
        int n = ab_arm_endpoints(&arms[k], e);
        for (int i = 0; i < n; i++) {
            if (!rows++)
                fputs("<h2>Endpoints (median per run)</h2>\n<table id=\"endpoints\"><tr><th>arm</th><th>endpoint</th>"
                      "<th>requests</th><th>bytes</th><th>retries</th><th>errors</th></tr>\n",
                      o);
            fputs("<tr><td>", o);
            html_esc(o, arms[k].name);
            fputs("</td><td style=\"text-align:left\">", o);
            html_esc(o, e[i].uri);
            fprintf(o, "</td><td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td></tr>\n", (unsigned long long)e[i].req,
                    (unsigned long long)e[i].bytes, (unsigned long long)e[i].retries, (unsigned long long)e[i].errors);
        }
    }
    if (rows) fputs("</table>\n", o);
}

int report_html(const char *path, const struct cmp *c, int nc)
{
    FILE *o = fopen(path, "w");
    if (!o) {
        fprintf(stderr, "s3shim ab: --report %s: %s\n", path, strerror(errno));
        return -1;
    }
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>s3shim ab</title>\n"
          "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
          ".diff{color:#b00;font-weight:bold}.faster,.less{color:#070}.slower,.more{color:#b00}"
          "figure{display:inline-block;margin:1em}</style></head><body>\n<h1>s3shim ab</h1>\n<p>command: <code>",
          o);
    for (int i = 0; cmd[i]; i++) {
        html_esc(o, cmd[i]);
        fputc(' ', o);
    }
    fprintf(o, "</code><br>%d runs per arm, alternated in random order; ratios against <b>", arms[0].nruns);
    html_esc(o, arms[0].name);
    fputs("</b>.</p>\n", o);
    for (int k = 1; k < narms; k++)
        if (ab_results_differ(k)) {
            fputs("<p class=\"diff\">RESULTS DIFFER: arm ", o);
            html_esc(o, arms[k].name);
            fputs(" gave other output, exit status or tree than the baseline.</p>\n", o);
        }
    fputs("<h2>Verdicts</h2>\n<table id=\"verdicts\"><tr><th>metric</th><th>arm</th><th>ratio</th><th>95% interval</th>"
          "<th>p</th><th>p (Holm)</th><th>verdict</th></tr>\n",
          o);
    for (int k = 0; k < nc; k++) {
        const struct cmp *x = &c[k];
        const char *w = ab_verdict_word(x->met, x->v);
        fprintf(o, "<tr><td>%s</td><td>", ab_met_name(x->met));
        html_esc(o, arms[x->arm].name);
        fprintf(o, "</td><td>%.3f</td><td>[%.3f, %.3f]</td><td>%.4f</td><td>%.4f</td><td class=\"%s\">%s</td></tr>\n",
                x->r.ratio, x->r.lo, x->r.hi, x->p, x->p_adj, x->v == AB_SAME                ? "same"
                : x->met == M_RSS ? (x->v == AB_LOWER ? "less" : "more")
                                  : (x->v == AB_LOWER ? "faster" : "slower"),
                w);
    }
    fputs("</table>\n<h2>Arms</h2>\n<table><tr><th>arm</th><th>mounts and settings</th>", o);
    for (int m = 0; m < NMET; m++) fprintf(o, "<th>median %s</th>", ab_met_name(m));
    fputs("<th>stdout sha256</th></tr>\n", o);
    for (int k = 0; k < narms; k++) {
        fputs("<tr><td>", o);
        html_esc(o, arms[k].name);
        fputs("</td><td style=\"text-align:left\">", o);
        for (int i = 0; i < arms[k].nmounts; i++) {
            html_esc(o, arms[k].mounts[i]);
            fputs("<br>", o);
        }
        for (int i = 0; i < arms[k].nenv; i++) {
            html_esc(o, arms[k].env[i]);
            fputs("<br>", o);
        }
        fputs("</td>", o);
        for (int m = 0; m < NMET; m++) fprintf(o, "<td>%.4f</td>", ab_arm_median(&arms[k], m));
        fprintf(o, "<td><code>%.16s</code></td></tr>\n", arms[k].runs[0].out_hash);
    }
    fputs("</table>\n", o);
    html_latency(o);
    html_endpoints(o);
    fputs("<h2>Runs</h2>\n", o);
    svg_runs(o);
    fputs("\n<h2>Latency per operation (op logs)</h2>\n", o);
    if (!ab_oplog) fputs("<p>The op log was off (<code>--no-oplog</code>).</p>\n", o);
    for (unsigned op = OL_OPEN; op < OL_NOPS; op++) svg_cdf(o, op);
    fputs("\n</body></html>\n", o);
    if (fclose(o) != 0) {
        fprintf(stderr, "s3shim ab: --report %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}
