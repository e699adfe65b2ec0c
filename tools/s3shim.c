/* s3shim - the command: run a program with the shim preloaded, show the effective
 * configuration, print the version. */
#define _GNU_SOURCE 1
#include "../core/config.h"
#include "../core/local/local.h"
#include "../core/mount.h"
#include "../core/s3/s3.h"
#include "../include/s3shim.h"
#include "tools.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;
int blk_main(int argc, char **argv); /* tools/blk.c */

static int usage(FILE *out, int code)
{
    fputs("usage: s3shim run [--mount PREFIX=URI]... [--stats] [--stats-file PATH] [--oplog PATH] [--log LEVEL] -- CMD [ARGS...]\n"
          "       s3shim config     print the effective configuration (secrets redacted)\n"
          "       s3shim config --settings   every S3SHIM_* setting: NAME<TAB>DEFAULT<TAB>MEANING\n"
          "       s3shim version\n"
          "       s3shim blk format|check|ls|df ...   block:// stores (s3shim blk help)\n"
          "       s3shim oplog FILE|DIR [--summary | --jsonl | --perfetto OUT.json | --fio OUT.iolog]   read op logs (S3SHIM_OPLOG)\n"
          "       s3shim oplog diff A B   two runs op by op: latency per op, mount, file and S3 endpoint; where the sequences part ways\n"
          "       s3shim replay LOG [--mount PREFIX=URI]... [--remap OLD=NEW]... [--speed N | --asap] [--prepare]   replay an op log\n"
          "       s3shim ab --arm NAME=PREFIX=URI[;...] --arm ... [--runs N] [--warmup K] [--json] [--report F.html] -- CMD [ARGS...]\n",
          out);
    return code;
}

/* libs3shim.so beside this binary (build tree), or in ../lib (installed), or S3SHIM_LIB. */
static int find_library(char *out, size_t len)
{
    const char *env = getenv("S3SHIM_LIB");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return access(out, R_OK) == 0 ? 0 : -1;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = '\0';
    const char *dir = dirname(self);
    const char *cands[] = {"%s/libs3shim.so", "%s/../lib/libs3shim.so", "%s/../lib/s3shim/libs3shim.so"};
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, cands[i], dir);
        if (realpath(p, out) && access(out, R_OK) == 0) return 0;
    }
    return -1;
}

static int append_env(const char *name, const char *value, const char *sep)
{
    const char *old = getenv(name);
    if (!old || !*old) return setenv(name, value, 1);
    size_t n = strlen(old) + strlen(value) + strlen(sep) + 1;
    char *v = malloc(n);
    if (!v) return -1;
    snprintf(v, n, "%s%s%s", value, sep, old);
    int r = setenv(name, v, 1);
    free(v);
    return r;
}

int cmd_run(int argc, char **argv)
{
    int i = 0;
    char mounts[8192] = "";
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--mount") == 0 && i + 1 < argc) {
            size_t l = strlen(mounts);
            snprintf(mounts + l, sizeof mounts - l, "%s%s", l ? ";" : "", argv[++i]);
        } else if (strcmp(a, "--stats") == 0) {
            setenv("S3SHIM_STATS", "1", 1);
        } else if (strcmp(a, "--stats-file") == 0 && i + 1 < argc) {
            setenv("S3SHIM_STATS_FILE", argv[++i], 1);
        } else if (strcmp(a, "--oplog") == 0 && i + 1 < argc) {
            setenv("S3SHIM_OPLOG", argv[++i], 1);
        } else if (strcmp(a, "--log") == 0 && i + 1 < argc) {
            setenv("S3SHIM_LOG", argv[++i], 1);
        } else if (a[0] == '-') {
            fprintf(stderr, "s3shim run: unknown option '%s'\n", a);
            return usage(stderr, 2);
        } else {
            break; /* CMD without "--" */
        }
    }
    if (i >= argc) {
        fprintf(stderr, "s3shim run: no command given\n");
        return usage(stderr, 2);
    }
    char lib[PATH_MAX];
    if (find_library(lib, sizeof lib) < 0) {
        fprintf(stderr, "s3shim run: cannot find libs3shim.so (set S3SHIM_LIB)\n");
        return 127;
    }
    if (mounts[0] && append_env("S3SHIM_MOUNTS", mounts, ";") < 0) return 127;
    const char *ol = getenv("S3SHIM_OPLOG"); /* relative: to here, for every process of the run */
    char cwd[PATH_MAX];
    if (ol && *ol && ol[0] != '/' && getcwd(cwd, sizeof cwd)) {
        size_t n = strlen(cwd) + strlen(ol) + 2;
        char *abs = malloc(n);
        if (!abs) return 127;
        snprintf(abs, n, "%s/%s", cwd, ol);
        setenv("S3SHIM_OPLOG", abs, 1);
        free(abs);
    }
    if (append_env("LD_PRELOAD", lib, ":") < 0) return 127;
    unsetenv("S3SHIM_ROOT_PID"); /* the command is the first process of this run */
    execvp(argv[i], argv + i);
    fprintf(stderr, "s3shim run: %s: %s\n", argv[i], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

static int is_secret(const char *name)
{
    return strstr(name, "SECRET") || strstr(name, "TOKEN") || strstr(name, "PASSWORD");
}

/* One line per setting this build knows, for docs/settings.md's test and for scripts.
 * "(unset)" is the default of a setting whose absence is the default behaviour. */
static int cmd_settings(void)
{
    for (int i = 0; cfg_known[i][0]; i++)
        printf("%s\t%s\t%s\n", cfg_known[i][0], cfg_known[i][2] ? cfg_known[i][2] : "(unset)", cfg_known[i][1]);
    return 0;
}

static int cmd_config(int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "--settings") == 0) return cmd_settings();
    if (argc > 0) {
        fprintf(stderr, "s3shim config: unknown argument '%s'\n", argv[0]);
        return usage(stderr, 2);
    }
    struct cfg c;
    cfg_load(&c, cfg_process_env, NULL);
    struct mount_table t;
    mnt_build(&t, &c);
    printf("s3shim %s\n\nmounts (longest prefix first):\n", S3SHIM_VERSION);
    for (int i = 0; i < t.n; i++) {
        const struct mount *m = &t.m[i];
        const char *shown = strcmp(m->prefix, "s3:") == 0 ? "s3://" : m->prefix;
        printf("  %-24s %-32s %s%s\n", shown, m->uri, m->disabled ? "disabled: " : "ok", m->disabled ? m->reason : "");
        char how[400];
        if (!m->disabled && strncmp(m->uri, "direct://", 9) == 0 && bk_direct_explain(m->uri + 9, &c, how, sizeof how) >= 0)
            printf("  %-24s %s\n", "", how);
    }
    printf("\nsettings:\n");
    printf("  %-24s %s\n", "log level", c.log_level == 0 ? "error" : c.log_level == 1 ? "warn" : c.log_level == 2 ? "info" : "debug");
    printf("  %-24s %s\n", "log file", c.log_file ? c.log_file : "(stderr)");
    printf("  %-24s %s\n", "stats at exit", c.stats ? "on" : "off");
    printf("  %-24s %s\n", "stats JSON file", c.stats_file ? c.stats_file : "(none)");
    printf("  %-24s %s\n", "op log", c.oplog ? c.oplog : "(off)");
    printf("  %-24s %zu bytes\n", "S3 part size", c.part_size);
    printf("  %-24s %d\n", "S3 requests per file", c.concurrency);
    printf("  %-24s %d\n", "S3 requests per process", c.max_inflight);
    printf("  %-24s %zu bytes\n", "memory budget", c.memory);
    printf("  %-24s %zu bytes\n", "S3 read-ahead memory", c.ra_memory);
    printf("  %-24s %s\n", "S3 addressing", c.addressing == CFG_ADDR_PATH ? "path" : c.addressing == CFG_ADDR_VIRTUAL ? "virtual" : "auto");
    printf("  %-24s %.1f s\n", "metadata cache", c.stat_ttl_ms / 1000.0);
    printf("  %-24s %d\n", "HTTP engine threads", c.io_threads);
    printf("  %-24s %d s\n", "stalled transfer retry", c.timeout_s);
    printf("  %-24s %s\n", "held read-ahead", c.read_hold == CFG_HOLD_ON ? "on" : c.read_hold == CFG_HOLD_OFF ? "off" : "auto");
    printf("  %-24s %s\n", "plain-http reads", c.curl_only ? "libcurl (every request)" : "own receiver, into the read buffer");
    printf("  %-24s %s\n", "S3 endpoints", c.endpoints ? c.endpoints : "(AWS settings below)");
    printf("  %-24s %s\n", "endpoint balancing", bal_policy_name((enum bal_policy)c.balance));
    printf("  %-24s %s\n", "hedged reads", c.hedge ? "auto" : "off");
    printf("  %-24s %s\n", "multipart uploads",
           c.shared_uploads ? "shared by the endpoints" : "stay on one endpoint");
    char sdir[1024];
    bk_s3_staging_dir(c.staging_dir, sdir, sizeof sdir);
    printf("  %-24s %s, at most %llu bytes\n", "S3 staging", sdir, c.staging_limit);
    if (c.write_behind)
        printf("  %-24s %d parts in flight while a new staged file is written\n", "S3 write-behind", c.write_behind);
    else
        printf("  %-24s off (uploaded at close)\n", "S3 write-behind");
    printf("  %-24s %s\n", "S3 temporaries", c.staging_defer ? "O_EXCL-created files upload at rename, under the new name" : "off (uploaded at close)");
    printf("  %-24s %zu bytes x %d in flight, %d io_uring threads, %d registered buffers%s%s\n", "direct:// engine",
           c.direct_chunk, c.direct_depth, c.direct_threads, c.direct_buffers, c.direct_sqpoll ? ", SQPOLL" : "",
           c.direct_gather ? ", writes gathered" : "");
    printf("  %-24s %s\n", "direct:// I/O",
           c.direct_engine == 1   ? "io_uring only (opens fail where the kernel refuses it)"
           : c.direct_engine == 2 ? "threads with pread/pwrite (S3SHIM_DIRECT_ENGINE=threads)"
                                  : "io_uring; threads where it is refused or under valgrind");
    printf("  %-24s %s\n", "direct:// fallback", c.direct_fallback ? "error" : "buffered (with a warning)");
    printf("  %-24s %s\n", "program's own AIO",
           c.kernel_files ? "file:// and direct:// descriptors name the real file from the start"
                          : "file:// and direct:// descriptors name the real file once io_uring or AIO is seen");
    if (c.block_commit_ms) printf("  %-24s visible at once, durable within %d ms (group commit)\n", "block:// commits", c.block_commit_ms);
    else printf("  %-24s durable before each call returns\n", "block:// commits");
    if (c.block_commit_ms && c.block_batch_ms)
        printf("  %-24s a process alone on the store commits up to 64 closes of new files together, within %d ms\n",
               "block:// close batches", c.block_batch_ms);
    else printf("  %-24s off: every close commits at once\n", "block:// close batches");
    printf("  %-24s O_RDWR readers ask other processes to commit what they wrote, waiting up to %d ms\n",
           "block:// shared writes", c.block_share_wait_ms);
    printf("  %-24s %s\n", "block:// discard", c.block_discard ? "freed blocks discarded as they become reusable (S3SHIM_BLOCK_DISCARD=1)" : "off (s3shim blk trim DEV discards free space)");
    char aws[2048];
    printf("\nAWS:\n");
    if (bk_s3_explain(aws, sizeof aws) < 0) {
        printf("  error: %s\n", aws);
        fprintf(stderr, "s3shim: error: %s\n", aws);
    } else {
        for (char *line = strtok(aws, "\n"); line; line = strtok(NULL, "\n")) {
            char *tab = strchr(line, '\t');
            if (tab) *tab++ = 0;
            printf("  %-24s %s\n", line, tab ? tab : "");
        }
    }
    printf("\nenvironment:\n");
    int warnings = 0;
    for (char **e = environ; *e; e++) {
        int ours = strncmp(*e, "S3SHIM_", 7) == 0, is_aws = strncmp(*e, "AWS_", 4) == 0;
        if (!ours && !is_aws) continue;
        const char *eq = strchr(*e, '=');
        char name[128];
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - *e) : (int)strlen(*e), *e);
        printf("  %s=%s", name, is_secret(name) ? "(redacted)" : eq ? eq + 1 : "");
        if (ours && !cfg_is_known(name)) {
            printf("    <- unknown setting, ignored");
            warnings++;
        }
        putchar('\n');
    }
    int bad = c.nerrors;
    for (int i = 0; i < c.nerrors; i++) fprintf(stderr, "s3shim: error: %s\n", c.errors[i]);
    for (int i = 0; i < t.n; i++) {
        const struct mount *m = &t.m[i];
        if (m->disabled && strcmp(m->uri, "s3://") != 0) {
            fprintf(stderr, "s3shim: error: mount %s=%s disabled: %s\n", m->prefix, m->uri, m->reason);
            bad++;
        }
    }
    if (warnings) fprintf(stderr, "s3shim: warning: %d unknown S3SHIM_* setting(s); known ones:\n", warnings);
    for (int i = 0; warnings && cfg_known[i][0]; i++)
        fprintf(stderr, "    %-22s %s%s%s%s\n", cfg_known[i][0], cfg_known[i][1], cfg_known[i][2] ? " (default " : "",
                cfg_known[i][2] ? cfg_known[i][2] : "", cfg_known[i][2] ? ")" : "");
    mnt_free(&t);
    cfg_free(&c);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr, 2);
    if (strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "config") == 0) return cmd_config(argc - 2, argv + 2);
    if (strcmp(argv[1], "blk") == 0) return blk_main(argc - 2, argv + 2);
    if (strcmp(argv[1], "oplog") == 0) return cmd_oplog(argc - 2, argv + 2);
    if (strcmp(argv[1], "ab") == 0) return cmd_ab(argc - 2, argv + 2);
    if (strcmp(argv[1], "replay") == 0) return cmd_replay(argc - 2, argv + 2);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("s3shim %s\n", S3SHIM_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return usage(stdout, 0);
    fprintf(stderr, "s3shim: unknown command '%s'\n", argv[1]);
    return usage(stderr, 2);
}
