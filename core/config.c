/* config.c - see config.h */
#include "config.h"

#include "s3/s3.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Name, one-line meaning, default as it would be written in the variable (NULL: unset,
 * the behaviour the meaning describes). cfg_load() applies the defaults; `s3shim config
 * --settings` prints this table, and tests/docs/settings.sh checks it against
 * docs/settings.md and checks that setting each default changes nothing. */
const char *const cfg_known[][3] = {
    {"S3SHIM_MOUNTS", "PREFIX=URI;... mount map (longest prefix wins)", "/s3=s3://"},
    {"S3SHIM_LOG", "error|warn|info|debug", "warn"},
    {"S3SHIM_LOG_FILE", "append log lines to this file (unset: stderr)", NULL},
    {"S3SHIM_STATS", "1: print a per-mount summary to stderr at exit", "0"},
    {"S3SHIM_STATS_FILE", "write the summary as JSON (%p = pid)", NULL},
    {"S3SHIM_OPLOG", "record every operation on a mount to this file (%p = pid) or directory", NULL},
    {"S3SHIM_PART_SIZE", "bytes per ranged GET and uploaded part, at least 5M", "8M"},
    {"S3SHIM_CONCURRENCY", "requests in flight per open file", "16"},
    {"S3SHIM_READAHEAD_MEMORY", "bytes one sequential S3 reader keeps fetched ahead, at most; past it the read-ahead grows in more, smaller GETs", "32M"},
    {"S3SHIM_MAX_REQUESTS", "requests in flight for the whole process", "128"},
    {"S3SHIM_MEMORY", "buffer memory budget of a process, e.g. 1G", "1G"},
    {"S3SHIM_ADDRESSING", "path|virtual|auto S3 addressing style", "auto"},
    {"S3SHIM_STAT_TTL", "seconds metadata stays cached, 0 = off", "5"},
    {"S3SHIM_IO_THREADS", "HTTP engine threads", "2"},
    {"S3SHIM_TIMEOUT", "seconds a stalled transfer waits before a retry", "30"},
    {"S3SHIM_READ_HOLD", "auto|on|off: read-ahead bodies wait in the socket for a reader of 1 MiB or more per read, then land in its buffer (auto: from a store that sends such a piece within 8 ms)", "auto"},
    {"S3SHIM_HTTP_RECV", "own|curl who receives plain-http reads: s3shim into the read buffer, or libcurl for every request", "own"},
    {"S3SHIM_NO_SIGN", "1: anonymous requests (public buckets)", "0"},
    {"S3SHIM_ENDPOINTS", "URL,URL,... S3 endpoints of one store, used together (unset: AWS_ENDPOINT_URL...)", NULL},
    {"S3SHIM_BALANCE", "sewt|least|rr how requests are spread over endpoints", "sewt"},
    {"S3SHIM_HEDGE", "auto|off backup request for a read slower than its endpoint's p95", "auto"},
    {"S3SHIM_SHARED_UPLOADS", "yes|no endpoints share multipart uploads; no = an upload stays on one", "yes"},
    {"S3SHIM_STAGING_DIR", "local directory of S3 staging files (unset: $XDG_CACHE_HOME/s3shim-staging, else /var/tmp/s3shim-staging-UID)", NULL},
    {"S3SHIM_STAGING_LIMIT", "most bytes the S3 staging files of this host may hold", "16G"},
    {"S3SHIM_WRITE_BEHIND", "parts of a new staged S3 file uploaded while it is written (at most this many in flight), 0 = off", "8"},
    {"S3SHIM_STAGING_DEFER", "1: an S3 file created O_RDWR|O_CREAT|O_EXCL (mkstemp) is a temporary: uploaded at rename under the new name, never if removed; 0 = at close like any file", "1"},
    {"S3SHIM_DIRECT_FALLBACK", "buffered|error when a filesystem refuses O_DIRECT (buffered: with a warning)", "buffered"},
    {"S3SHIM_DIRECT_CHUNK", "direct:// and block:// aligned read/write size, 64k to 64M", "1M"},
    {"S3SHIM_DIRECT_DEPTH", "direct:// and block:// chunks in flight per sequential reader or writer, at most 16", "4"},
    {"S3SHIM_DIRECT_THREADS", "direct:// io_uring threads, one ring each", "2"},
    {"S3SHIM_DIRECT_BUFFERS", "direct:// buffers registered with io_uring, 0 = none", "32"},
    {"S3SHIM_DIRECT_ENGINE", "auto|io_uring|threads: how direct:// and block:// do their I/O (auto: io_uring, threads where it is refused or under valgrind)", "auto"},
    {"S3SHIM_DIRECT_SQPOLL", "1: io_uring kernel submission polling", "0"},
    {"S3SHIM_DIRECT_GATHER", "1: gather small direct:// writes across calls; others see them at close/fsync", "0"},
    {"S3SHIM_KERNEL_FILES", "1: file:// and direct:// descriptors name the real file from the start, for programs whose io_uring the shim cannot see (liburing); 0 = once a ring or AIO request is seen", "0"},
    {"S3SHIM_BLOCK_SHARE_WAIT_MS", "block://: how long a read waits for another process to commit what it wrote there, then EIO", "10000"},
    {"S3SHIM_BLOCK_COMMIT_MS", "block://: closes and renames are durable within this many ms (one flush pair for all), 0 = at once", "1000"},
    {"S3SHIM_BLOCK_BATCH_MS", "block://: a process alone on the store commits its closes of new files together within this many ms, 0 = each at once", "10"},
    {"S3SHIM_BLOCK_DISCARD", "1: block:// tells the device (BLKDISCARD, or a hole in an image file) about blocks it frees, as they become reusable", "0"},
    {"S3SHIM_LIB", "s3shim run: the libs3shim.so to preload (unset: beside the command or in ../lib)", NULL},
    {"S3SHIM_ROOT_PID", "internal: pid of the first process of a run", NULL},
    {"S3SHIM_NO_AVX2", "testing: 1 = the pass-through path test scans as on a CPU without AVX2 (SSE4.2), sse2 = as on one without SSE4.2 either", NULL},
    {NULL, NULL, NULL},
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

long long cfg_parse_size(const char *v)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || n < 0) return -1;
    long long mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1LL << 10; end++; break;
    case 'm': case 'M': mul = 1LL << 20; end++; break;
    case 'g': case 'G': mul = 1LL << 30; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'I') end++;
    if (*end == 'b' || *end == 'B') end++;
    if (*end || n > (1LL << 50) / mul) return -1;
    return n * mul;
}

/* An integer setting within [lo, hi]; keeps *out and records an error otherwise. */
static void int_setting(struct cfg *c, cfg_getenv_fn get, void *ctx, const char *name, int lo, int hi, int *out)
{
    const char *v = get(name, ctx);
    if (!v || !*v) return;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        cfg_error(c, "%s: '%s' is not a whole number from %d to %d; using %d", name, v, lo, hi, *out);
        return;
    }
    *out = (int)n;
}

/* Every comma-separated entry of S3SHIM_ENDPOINTS must be http(s)://HOST[:PORT]. */
static void check_endpoints(struct cfg *c, const char *list)
{
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        const char *b = p, *e = p + n;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '/')) e--;
        size_t skip = (size_t)(e - b) > 7 && strncasecmp(b, "http://", 7) == 0    ? 7
                      : (size_t)(e - b) > 8 && strncasecmp(b, "https://", 8) == 0 ? 8
                                                                                 : 0;
        int ok = skip && !memchr(b + skip, '/', (size_t)(e - b) - skip) && !memchr(b + skip, '?', (size_t)(e - b) - skip);
        for (const char *q = b; ok && q < e; q++) ok = (unsigned char)*q > ' ';
        if (!ok) {
            cfg_error(c, "S3SHIM_ENDPOINTS: entry '%.*s' is not http://HOST[:PORT] or https://HOST[:PORT]; S3 mounts "
                         "disabled", (int)(e - b > 100 ? 100 : e - b), b);
            return;
        }
        if (!p[n]) return;
        p += n + 1;
    }
}

/* A yes/no setting; yes_word ("auto") also means yes where the setting has it. Keeps
 * *out and records an error naming what it accepts (`accepts`) otherwise. */
static void bool_setting(struct cfg *c, cfg_getenv_fn get, void *ctx, const char *name, const char *yes_word,
                         const char *accepts, int *out)
{
    const char *v = get(name, ctx);
    if (!v || !*v) return;
    int b = yes_word && strcasecmp(v, yes_word) == 0 ? 1 : cfg_parse_bool(v);
    if (b < 0)
        cfg_error(c, "%s: '%s' is not %s; using %s", name, v, accepts,
                  *out ? (yes_word ? yes_word : "yes") : "no");
    else
        *out = b;
}

static void size_setting(struct cfg *c, cfg_getenv_fn get, void *ctx, const char *name, long long lo, size_t *out)
{
    const char *v = get(name, ctx);
    if (!v || !*v) return;
    long long n = cfg_parse_size(v);
    if (n < lo) {
        cfg_error(c, "%s: '%s' is not a size of at least %lld bytes (e.g. 8M); using %zu", name, v, lo, *out);
        return;
    }
    *out = (size_t)n;
}

/* Straight from environ, not getenv(): a program may define its own getenv that does
 * not work before its main() (bash does), and the shim reads its settings before that. */
const char *cfg_process_env(const char *name, void *ctx)
{
    extern char **environ;
    (void)ctx;
    size_t n = strlen(name);
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return NULL;
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
    bool_setting(c, get, ctx, "S3SHIM_STATS", NULL, "a boolean (1/0, yes/no)", &c->stats);
    if ((v = get("S3SHIM_STATS_FILE", ctx)) && *v) c->stats_file = strdup(v);
    if ((v = get("S3SHIM_OPLOG", ctx)) && *v) c->oplog = strdup(v);

    c->part_size = 8u << 20;
    c->concurrency = 16;
    c->max_inflight = 128;
    c->memory = 1u << 30;
    c->ra_memory = 32u << 20;
    c->stat_ttl_ms = 5000;
    c->io_threads = 2;
    c->timeout_s = 30;
    size_setting(c, get, ctx, "S3SHIM_PART_SIZE", 5LL << 20, &c->part_size);
    size_setting(c, get, ctx, "S3SHIM_MEMORY", 16LL << 20, &c->memory);
    size_setting(c, get, ctx, "S3SHIM_READAHEAD_MEMORY", 1LL << 20, &c->ra_memory);
    int_setting(c, get, ctx, "S3SHIM_CONCURRENCY", 1, 1024, &c->concurrency);
    int_setting(c, get, ctx, "S3SHIM_MAX_REQUESTS", 1, 65536, &c->max_inflight);
    int_setting(c, get, ctx, "S3SHIM_IO_THREADS", 1, 64, &c->io_threads);
    int_setting(c, get, ctx, "S3SHIM_TIMEOUT", 1, 3600, &c->timeout_s);
    if ((v = get("S3SHIM_STAGING_DIR", ctx)) && *v) c->staging_dir = strdup(v);
    c->staging_limit = 16ULL << 30;
    if ((v = get("S3SHIM_STAGING_LIMIT", ctx)) && *v) {
        long long l = cfg_parse_size(v);
        if (l < 0)
            cfg_error(c, "S3SHIM_STAGING_LIMIT: '%s' is not a size (like 20G); using 16G", v);
        else
            c->staging_limit = (unsigned long long)l;
    }
    c->write_behind = 8;
    int_setting(c, get, ctx, "S3SHIM_WRITE_BEHIND", 0, 64, &c->write_behind);
    c->staging_defer = 1;
    int_setting(c, get, ctx, "S3SHIM_STAGING_DEFER", 0, 1, &c->staging_defer);
    c->direct_chunk = 1u << 20;
    c->direct_depth = 4;
    c->direct_threads = 2;
    c->direct_buffers = 32;
    size_setting(c, get, ctx, "S3SHIM_DIRECT_CHUNK", 64LL << 10, &c->direct_chunk);
    if (c->direct_chunk > (64u << 20) || (c->direct_chunk & 4095)) {
        cfg_error(c, "S3SHIM_DIRECT_CHUNK: %zu is not a multiple of 4k up to 64M; using 1M", c->direct_chunk);
        c->direct_chunk = 1u << 20;
    }
    int_setting(c, get, ctx, "S3SHIM_DIRECT_DEPTH", 1, 16, &c->direct_depth);
    int_setting(c, get, ctx, "S3SHIM_DIRECT_THREADS", 1, 64, &c->direct_threads);
    int_setting(c, get, ctx, "S3SHIM_DIRECT_BUFFERS", 0, 1024, &c->direct_buffers);
    bool_setting(c, get, ctx, "S3SHIM_DIRECT_SQPOLL", NULL, "a boolean (1/0, yes/no)", &c->direct_sqpoll);
    bool_setting(c, get, ctx, "S3SHIM_DIRECT_GATHER", NULL, "a boolean (1/0, yes/no)", &c->direct_gather);
    bool_setting(c, get, ctx, "S3SHIM_KERNEL_FILES", NULL, "a boolean (1/0, yes/no)", &c->kernel_files);
    c->block_commit_ms = 1000;
    int_setting(c, get, ctx, "S3SHIM_BLOCK_COMMIT_MS", 0, 60000, &c->block_commit_ms);
    c->block_batch_ms = 10;
    int_setting(c, get, ctx, "S3SHIM_BLOCK_BATCH_MS", 0, 1000, &c->block_batch_ms);
    c->block_share_wait_ms = 10000;
    int_setting(c, get, ctx, "S3SHIM_BLOCK_SHARE_WAIT_MS", 1, 3600000, &c->block_share_wait_ms);
    int_setting(c, get, ctx, "S3SHIM_BLOCK_DISCARD", 0, 1, &c->block_discard);
    if ((v = get("S3SHIM_DIRECT_ENGINE", ctx)) && *v) {
        if (strcasecmp(v, "io_uring") == 0)
            c->direct_engine = 1;
        else if (strcasecmp(v, "threads") == 0)
            c->direct_engine = 2;
        else if (strcasecmp(v, "auto") != 0)
            cfg_error(c, "S3SHIM_DIRECT_ENGINE: '%s' is not auto, io_uring or threads; using auto", v);
    }
    if ((v = get("S3SHIM_DIRECT_FALLBACK", ctx)) && *v) {
        if (strcasecmp(v, "error") == 0)
            c->direct_fallback = 1;
        else if (strcasecmp(v, "buffered") != 0)
            cfg_error(c, "S3SHIM_DIRECT_FALLBACK: '%s' is not buffered or error; using buffered", v);
    }
    if ((v = get("S3SHIM_STAT_TTL", ctx)) && *v) {
        char *end;
        double t = strtod(v, &end);
        if (*end || t < 0 || t > 86400)
            cfg_error(c, "S3SHIM_STAT_TTL: '%s' is not a number of seconds (0 to 86400); using 5", v);
        else
            c->stat_ttl_ms = (int)(t * 1000);
    }
    if ((v = get("S3SHIM_ADDRESSING", ctx)) && *v) {
        if (strcasecmp(v, "path") == 0)
            c->addressing = CFG_ADDR_PATH;
        else if (strcasecmp(v, "virtual") == 0 || strcasecmp(v, "vhost") == 0)
            c->addressing = CFG_ADDR_VIRTUAL;
        else if (strcasecmp(v, "auto") != 0)
            cfg_error(c, "S3SHIM_ADDRESSING: '%s' is not path, virtual or auto; using auto", v);
    }

    if ((v = get("S3SHIM_ENDPOINTS", ctx)) && *v) {
        /* Kept even when malformed: the S3 mounts then stay disabled (never a silent
         * fall back to another endpoint), and the error says which entry is wrong. */
        c->endpoints = strdup(v);
        check_endpoints(c, v);
    }
    c->balance = BAL_SEWT;
    if ((v = get("S3SHIM_BALANCE", ctx)) && *v) {
        int p = bal_policy_parse(v);
        if (p < 0)
            cfg_error(c, "S3SHIM_BALANCE: '%s' is not sewt, least or rr; using sewt", v);
        else
            c->balance = p;
    }
    c->read_hold = CFG_HOLD_AUTO;
    if ((v = get("S3SHIM_READ_HOLD", ctx)) && *v) {
        if (strcasecmp(v, "on") == 0)
            c->read_hold = CFG_HOLD_ON;
        else if (strcasecmp(v, "off") == 0)
            c->read_hold = CFG_HOLD_OFF;
        else if (strcasecmp(v, "auto") != 0)
            cfg_error(c, "S3SHIM_READ_HOLD: '%s' is not auto, on or off; using auto", v);
    }
    c->curl_only = 0;
    if ((v = get("S3SHIM_HTTP_RECV", ctx)) && *v) {
        if (strcasecmp(v, "curl") == 0)
            c->curl_only = 1;
        else if (strcasecmp(v, "own") != 0)
            cfg_error(c, "S3SHIM_HTTP_RECV: '%s' is not own or curl; using own", v);
    }
    c->hedge = 1;
    bool_setting(c, get, ctx, "S3SHIM_HEDGE", "auto", "auto or off", &c->hedge);
    c->shared_uploads = 1;
    bool_setting(c, get, ctx, "S3SHIM_SHARED_UPLOADS", NULL, "yes or no", &c->shared_uploads);

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
    free(c->oplog);
    free(c->endpoints);
    free(c->staging_dir);
    memset(c, 0, sizeof *c);
}
