/* config.c - see config.h */
#include "config.h"

#include "log.h"
#include "path.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const cfg_known[][2] = {
    {"S3SHIM_MOUNTS", "PREFIX=URI;... mount map (longest prefix wins)"},
    {"S3SHIM_LOG", "error|warn|info|debug (default warn)"},
    {"S3SHIM_LOG_FILE", "append log lines to this file instead of stderr"},
    {"S3SHIM_STATS", "1: print a per-mount summary to stderr at exit"},
    {"S3SHIM_STATS_FILE", "write the summary as JSON (%p = pid)"},
    {"S3SHIM_ROOT_PID", "internal: pid of the first process of a run"},
    {NULL, NULL},
};

int cfg_is_known(const char *name)
{
    for (int i = 0; cfg_known[i][0]; i++)
        if (strcmp(cfg_known[i][0], name) == 0) return 1;
    return 0;
}

int cfg_parse_bool(const char *v)
{
    static const char *const yes[] = {"1", "yes", "true", "on"}, *const no[] = {"0", "no", "false", "off", ""};
    for (size_t i = 0; i < 4; i++)
        if (strcasecmp(v, yes[i]) == 0) return 1;
    for (size_t i = 0; i < 5; i++)
        if (strcasecmp(v, no[i]) == 0) return 0;
    return -1;
}

static void cfg_error(struct cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfg_error(struct cfg *c, const char *fmt, ...)
{
    if (c->nerrors >= CFG_MAX_ERRORS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errors[c->nerrors++], sizeof c->errors[0], fmt, ap);
    va_end(ap);
}

static int find_mount(const struct cfg *c, const char *prefix)
{
    for (int i = 0; i < c->nmounts; i++)
        if (strcmp(c->mounts[i].prefix, prefix) == 0) return i;
    return -1;
}

static void add_mount(struct cfg *c, const char *prefix, const char *uri, int is_default)
{
    int i = find_mount(c, prefix);
    if (i >= 0) {
        if (!c->mounts[i].is_default) {
            cfg_error(c, "S3SHIM_MOUNTS: prefix '%s' is mapped twice; keeping '%s', ignoring '%s'",
                      prefix, c->mounts[i].uri, uri);
            return;
        }
        free(c->mounts[i].uri); /* a user entry replaces a default one */
        c->mounts[i].uri = strdup(uri);
        c->mounts[i].is_default = is_default;
        return;
    }
    if (c->nmounts >= CFG_MAX_MOUNTS) {
        cfg_error(c, "S3SHIM_MOUNTS: more than %d mounts; '%s' ignored", CFG_MAX_MOUNTS, prefix);
        return;
    }
    c->mounts[c->nmounts++] = (struct cfg_mount){strdup(prefix), strdup(uri), is_default};
}

/* Strip white space at both ends, in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

void cfg_parse_mounts(struct cfg *c, const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    if (!copy) return;
    /* Entries are separated by ';' or new lines (a multi-line value in a script). */
    for (char *ent = strtok_r(copy, ";\n", &save); ent; ent = strtok_r(NULL, ";\n", &save)) {
        ent = trim(ent);
        if (!*ent) continue;
        char *eq = strchr(ent, '=');
        if (!eq) {
            cfg_error(c, "S3SHIM_MOUNTS: entry '%s' has no '=' (want PREFIX=URI); mount disabled", ent);
            continue;
        }
        *eq = '\0';
        const char *prefix = trim(ent), *uri = trim(eq + 1);
        char norm[PATH_MAX];
        if (prefix[0] != '/') {
            cfg_error(c, "S3SHIM_MOUNTS: prefix '%s' is not an absolute path; mount '%s' disabled", prefix, uri);
            continue;
        }
        if (path_normalize(prefix, norm, sizeof norm) < 0) {
            cfg_error(c, "S3SHIM_MOUNTS: prefix '%.64s...' is too long; mount disabled", prefix);
            continue;
        }
        if (strcmp(norm, "/") == 0) {
            cfg_error(c, "S3SHIM_MOUNTS: prefix '%s' would capture every path; mount '%s' disabled", prefix, uri);
            continue;
        }
        if (!strstr(uri, "://")) {
            cfg_error(c, "S3SHIM_MOUNTS: '%s' for prefix '%s' is not a URI (want s3://, file://, direct:// or block://); mount disabled",
                      uri, norm);
            continue;
        }
        add_mount(c, norm, uri, 0);
    }
    free(copy);
}

const char *cfg_process_env(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

void cfg_load(struct cfg *c, cfg_getenv_fn get, void *ctx)
{
    memset(c, 0, sizeof *c);
    c->log_level = SLOG_WARN;
    const char *v;
    if ((v = get("S3SHIM_LOG", ctx)) && *v) {
        int l = slog_parse_level(v);
        if (l < 0)
            cfg_error(c, "S3SHIM_LOG: '%s' is not one of error, warn, info, debug; using warn", v);
        else
            c->log_level = l;
    }
    if ((v = get("S3SHIM_LOG_FILE", ctx)) && *v) c->log_file = strdup(v);
    if ((v = get("S3SHIM_STATS", ctx))) {
        int b = cfg_parse_bool(v);
        if (b < 0)
            cfg_error(c, "S3SHIM_STATS: '%s' is not a boolean (1/0, yes/no); stats off", v);
        else
            c->stats = b;
    }
    if ((v = get("S3SHIM_STATS_FILE", ctx)) && *v) c->stats_file = strdup(v);

    add_mount(c, "/s3", "s3://", 1);
    add_mount(c, "s3:", "s3://", 1);
    if ((v = get("S3SHIM_MOUNTS", ctx))) cfg_parse_mounts(c, v);
}

void cfg_free(struct cfg *c)
{
    for (int i = 0; i < c->nmounts; i++) {
        free(c->mounts[i].prefix);
        free(c->mounts[i].uri);
    }
    free(c->log_file);
    free(c->stats_file);
    memset(c, 0, sizeof *c);
}
