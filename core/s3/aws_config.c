/* aws_config.c - see aws_config.h.
 *
 * Why it is built this way:
 * - the two files are read whole (bounded size, regular files only) and scanned by one
 *   small INI reader that follows Python configparser as botocore uses it: '=' or ':'
 *   separates key and value, keys are case-insensitive, '#' and ';' start full-line
 *   comments (never inline), an indented line continues the key above it, and under a key
 *   with an empty value ("s3 =") the indented lines are nested "name = value" pairs;
 * - like botocore's merged profile map, the credentials file's profile also carries
 *   region/endpoint_url/ca_bundle and wins over the config file for every key, but a key
 *   pair is always taken whole from one file;
 * - every error is one line naming the variable, or the file and line, or the profile. */
#include "aws_config.h"
#include "../sys.h"
#include "s3.h"

#include "../config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>


#define AWS_FILE_MAX (1 << 20) /* a credentials or config file larger than this is refused */

/* ---- errors and the environment ---------------------------------------------------- */

struct loader {
    aws_getenv_fn get;
    void *ctx;
    char *err;
    size_t errlen;
};

static int fail(struct loader *L, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct loader *L, int code, const char *fmt, ...)
{
    if (L->err && L->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->err, L->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The variable's value, or NULL when unset or empty. */
static const char *env(const struct loader *L, const char *name)
{
    const char *v = L->get(name, L->ctx);
    return v && *v ? v : NULL;
}

static int set_field(char *dst, size_t dstsz, const char *v)
{
    size_t n = strlen(v);
    if (n >= dstsz) return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

/* ---- paths ---------------------------------------------------------------------------- */

/* Resolve the value of variable var (or, when unset, $HOME/dflt) into out. A leading "~/"
 * means $HOME. Returns 1 if there is a path to read, 0 if there is none (no variable and
 * no usable $HOME), -errno with err set for a relative or overlong path. */
static int resolve_path(struct loader *L, const char *var, const char *value, const char *home, const char *dflt,
                        char *out, size_t outsz)
{
    int n;
    if (!value) {
        if (!home) return 0;
        n = snprintf(out, outsz, "%s/%s", home, dflt);
    } else if (value[0] == '~' && value[1] == '/') {
        if (!home) return fail(L, -EINVAL, "%s: '%s' starts with ~/ but HOME is not an absolute path", var, value);
        n = snprintf(out, outsz, "%s%s", home, value + 1);
    } else if (value[0] != '/') {
        return fail(L, -EINVAL, "%s: '%s' is a relative path; s3shim never reads files from the working directory",
                    var, value);
    } else {
        n = snprintf(out, outsz, "%s", value);
    }
    if (n < 0 || (size_t)n >= outsz) return fail(L, -ENAMETOOLONG, "%s: path is too long", var);
    return 1;
}

/* Read a whole regular file into a NUL-terminated heap buffer. -ENOENT (err untouched)
 * when it does not exist; other failures set err. */
static int read_file(struct loader *L, const char *path, char **bufp)
{
    *bufp = NULL;
    int fd = sys.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) return -ENOENT;
        return fail(L, -e, "cannot read %s: %s", path, strerror(e));
    }
    struct stat st;
    int r = 0;
    char *buf = NULL;
    if (sys.fstat(fd, &st) < 0) {
        r = fail(L, -errno, "cannot stat %s: %s", path, strerror(errno));
    } else if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3) {
        buf = calloc(1, 1); /* /dev/null: the usual way to say "no such file", as the CLI takes it */
        if (!buf) r = -ENOMEM;
    } else if (!S_ISREG(st.st_mode)) {
        r = fail(L, -EINVAL, "%s is not a regular file", path);
    } else if (st.st_size > AWS_FILE_MAX) {
        r = fail(L, -EFBIG, "%s is larger than %d bytes; not an AWS config file?", path, AWS_FILE_MAX);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        r = -ENOMEM;
    } else {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t k = sys.read(fd, buf + got, (size_t)st.st_size - got);
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) {
                r = fail(L, -errno, "cannot read %s: %s", path, strerror(errno));
                break;
            }
            if (k == 0) break; /* shrank under us: take what is there */
            got += (size_t)k;
        }
        buf[got] = '\0';
        if (r == 0 && memchr(buf, '\0', got)) r = fail(L, -EINVAL, "%s: contains a NUL byte; not a text file", path);
    }
    sys.close(fd);
    if (r < 0) {
        if (buf) explicit_bzero(buf, (size_t)st.st_size + 1);
        free(buf);
        return r;
    }
    *bufp = buf;
    return 0;
}

/* ---- the INI reader ------------------------------------------------------------------- */

/* Called for a section header (key == NULL), a "key = value" line (sub == NULL) and a
 * nested "sub = value" line under "key =". Returns 0 or -errno having set the error. */
typedef int (*ini_fn)(void *arg, int line, const char *section, const char *key, const char *sub,
                      const char *value);

static void lowercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* Split "k = v" / "k: v" at the first '=' or ':'; NULL if there is neither. */
static char *split_kv(char *p, char **valuep)
{
    char *d = p + strcspn(p, "=:");
    if (!*d) return NULL;
    *d = '\0';
    *valuep = trim(d + 1);
    char *k = trim(p);
    lowercase(k);
    return k;
}

struct ini_state {
    struct loader *L;
    const char *path;
    char *section; /* NULL before the first header */
    char *key;     /* the key continuation lines belong to, or NULL */
    int key_indent, key_nested;
};

static int ini_line(struct ini_state *S, int lineno, char *line, ini_fn fn, void *arg)
{
    int indent = (int)strspn(line, " \t");
    char *p = trim(line);
    if (!*p || *p == '#' || *p == ';') return 0;
    if (S->key && indent > S->key_indent) {
        if (!S->key_nested) return 0; /* second line of a multi-line value: nothing we use */
        char *v, *k = split_kv(p, &v);
        if (!k || !*k)
            return fail(S->L, -EINVAL, "%s:%d: expected 'name = value' under '%s ='", S->path, lineno, S->key);
        return fn(arg, lineno, S->section, S->key, k, v);
    }
    S->key = NULL;
    if (*p == '[') {
        size_t n = strlen(p);
        if (p[n - 1] != ']') return fail(S->L, -EINVAL, "%s:%d: section header without ']'", S->path, lineno);
        p[n - 1] = '\0';
        S->section = trim(p + 1);
        if (!*S->section) return fail(S->L, -EINVAL, "%s:%d: empty section name", S->path, lineno);
        return fn(arg, lineno, S->section, NULL, NULL, NULL);
    }
    char *v, *k = split_kv(p, &v);
    if (!k) return fail(S->L, -EINVAL, "%s:%d: expected 'key = value' or '[section]'", S->path, lineno);
    if (!*k) return fail(S->L, -EINVAL, "%s:%d: empty key before '='", S->path, lineno);
    if (!S->section) return fail(S->L, -EINVAL, "%s:%d: '%s' before any [section]", S->path, lineno, k);
    S->key = k;
    S->key_indent = indent;
    S->key_nested = *v == '\0';
    return fn(arg, lineno, S->section, k, NULL, v);
}

static int ini_parse(struct loader *L, const char *path, const char *text, ini_fn fn, void *arg)
{
    char *copy = strdup(text);
    if (!copy) return -ENOMEM;
    struct ini_state S = {.L = L, .path = path};
    char *line = copy;
    if ((unsigned char)line[0] == 0xEF && (unsigned char)line[1] == 0xBB && (unsigned char)line[2] == 0xBF)
        line += 3; /* UTF-8 byte order mark from a Windows editor */
    int r = 0;
    for (int lineno = 1; line && r == 0; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        r = ini_line(&S, lineno, line, fn, arg);
        line = nl ? nl + 1 : NULL;
    }
    explicit_bzero(copy, strlen(text));
    free(copy);
    return r;
}

/* ---- one profile out of one file ------------------------------------------------------ */

enum { K_AK, K_SK, K_TOKEN, K_SECTOKEN, K_REGION, K_ENDPOINT, K_CA, K_SERVICES, K_IGNORE, K_S3, K_ATTEMPTS, K_NKEYS };
static const char *const key_names[K_NKEYS] = {
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_security_token", "region",
    "endpoint_url", "ca_bundle", "services", "ignore_configured_endpoint_urls", "s3", "max_attempts",
};
/* Profile keys for ways of getting credentials that this build does not implement. */
static const char *const unsupported_keys[] = {
    "role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file", NULL,
};

struct prof {
    int found;
    char access_key[256], secret_key[256];
    char *token;
    char region[64], endpoint[1024], s3_endpoint[1024], ca_bundle[1024], services[128], attempts[16];
    char services_s3_endpoint[1024]; /* from [services NAME], config file pass 2 */
    int ignore_endpoints;            /* -1 unset */
    const char *unsupported;         /* first unsupported credential key seen */
    int region_line, endpoint_line, s3_endpoint_line, services_s3_line, ca_line, attempts_line;
};

struct scan {
    struct loader *L;
    const char *path;
    const char *profile;
    int config_syntax;      /* config file: "[profile NAME]" / "[default]" */
    const char *services;   /* pass 2: read s3 endpoint_url from "[services NAME]" only */
    struct prof *p;
    int where;              /* 0 elsewhere, 1 in the profile, 2 in the services section */
    unsigned seen_sections; /* bit per header form of our profile: catches a repeated one */
    unsigned seen_keys;     /* keys given in the current section occurrence */
};

/* Which of our sections a header names: 0 none, else 1 + a bit index for duplicates. */
static int classify_section(const struct scan *sc, const char *name, int *bit)
{
    if (!sc->config_syntax) {
        *bit = 0;
        return !sc->services && strcmp(name, sc->profile) == 0 ? 1 : 0;
    }
    size_t w = strcspn(name, " \t");
    const char *rest = name + w + strspn(name + w, " \t");
    if (w == 7 && strncmp(name, "profile", 7) == 0 && *rest && strcmp(rest, sc->profile) == 0) {
        *bit = 1;
        return sc->services ? 0 : 1;
    }
    if (strcmp(name, "default") == 0 && strcmp(sc->profile, "default") == 0) {
        *bit = 0;
        return sc->services ? 0 : 1;
    }
    if (w == 8 && strncmp(name, "services", 8) == 0 && sc->services && strcmp(rest, sc->services) == 0) {
        *bit = 2;
        return 2;
    }
    return 0;
}

static int key_index(const char *k)
{
    for (int i = 0; i < K_NKEYS; i++)
        if (strcmp(k, key_names[i]) == 0) return i;
    return -1;
}

static int store(struct scan *sc, int line, const char *key, char *dst, size_t dstsz, const char *v)
{
    if (set_field(dst, dstsz, v) < 0)
        return fail(sc->L, -EINVAL, "%s:%d: value of '%s' is too long (at most %zu bytes)", sc->path, line, key,
                    dstsz - 1);
    return 0;
}

static int store_token(struct scan *sc, const char *v, int primary)
{
    if (sc->p->token && !primary) return 0; /* aws_session_token beats the legacy name */
    char *t = strdup(v);
    if (!t) return -ENOMEM;
    if (sc->p->token) {
        explicit_bzero(sc->p->token, strlen(sc->p->token));
        free(sc->p->token);
    }
    sc->p->token = t;
    return 0;
}

static int profile_key(struct scan *sc, int line, const char *key, const char *v)
{
    struct prof *p = sc->p;
    int k = key_index(key);
    if (k < 0) {
        for (int i = 0; unsupported_keys[i]; i++)
            if (strcmp(key, unsupported_keys[i]) == 0 && !p->unsupported) p->unsupported = unsupported_keys[i];
        return 0;
    }
    if (sc->seen_keys & (1u << k))
        return fail(sc->L, -EINVAL, "%s:%d: '%s' is set twice in profile '%s'", sc->path, line, key, sc->profile);
    sc->seen_keys |= 1u << k;
    if (!*v) return 0; /* "key =" alone: unset (or the head of a nested block) */
    switch (k) {
    case K_AK: return store(sc, line, key, p->access_key, sizeof p->access_key, v);
    case K_SK: return store(sc, line, key, p->secret_key, sizeof p->secret_key, v);
    case K_TOKEN: return store_token(sc, v, 1);
    case K_SECTOKEN: return store_token(sc, v, 0);
    case K_REGION: p->region_line = line; return store(sc, line, key, p->region, sizeof p->region, v);
    case K_ENDPOINT: p->endpoint_line = line; return store(sc, line, key, p->endpoint, sizeof p->endpoint, v);
    case K_CA: p->ca_line = line; return store(sc, line, key, p->ca_bundle, sizeof p->ca_bundle, v);
    case K_SERVICES: return store(sc, line, key, p->services, sizeof p->services, v);
    case K_ATTEMPTS: p->attempts_line = line; return store(sc, line, key, p->attempts, sizeof p->attempts, v);
    case K_IGNORE:
        p->ignore_endpoints = cfg_parse_bool(v);
        if (p->ignore_endpoints < 0)
            return fail(sc->L, -EINVAL, "%s:%d: ignore_configured_endpoint_urls = '%s' is not true or false",
                        sc->path, line, v);
        return 0;
    default: return 0;
    }
}

static int scan_entry(void *arg, int line, const char *section, const char *key, const char *sub, const char *v)
{
    struct scan *sc = arg;
    if (!key) {
        int bit = 0;
        sc->where = classify_section(sc, section, &bit);
        sc->seen_keys = 0;
        if (!sc->where) return 0;
        if (sc->seen_sections & (1u << bit))
            return fail(sc->L, -EINVAL, "%s:%d: section [%s] appears twice", sc->path, line, section);
        sc->seen_sections |= 1u << bit;
        if (sc->where == 1) sc->p->found = 1;
        return 0;
    }
    if (sc->where == 1 && !sub) return profile_key(sc, line, key, v);
    if (sub && strcmp(key, "s3") == 0 && strcmp(sub, "endpoint_url") == 0 && *v) {
        if (sc->where == 1) {
            sc->p->s3_endpoint_line = line;
            return store(sc, line, "s3.endpoint_url", sc->p->s3_endpoint, sizeof sc->p->s3_endpoint, v);
        }
        if (sc->where == 2) {
            sc->p->services_s3_line = line;
            return store(sc, line, "s3.endpoint_url", sc->p->services_s3_endpoint,
                         sizeof sc->p->services_s3_endpoint, v);
        }
    }
    return 0;
}

static void prof_free(struct prof *p)
{
    if (p->token) {
        explicit_bzero(p->token, strlen(p->token));
        free(p->token);
    }
    explicit_bzero(p, sizeof *p);
}

/* Read profile `profile` from file `path` into p (zeroed first). A missing file is not
 * an error unless explicit. */
static int load_profile(struct loader *L, const char *path, const char *var, int explicit, int config_syntax,
                        const char *profile, struct prof *p)
{
    memset(p, 0, sizeof *p);
    p->ignore_endpoints = -1;
    if (!path[0]) return 0;
    char *text = NULL;
    int r = read_file(L, path, &text);
    if (r == -ENOENT)
        return explicit ? fail(L, -EINVAL, "%s=%s: no such file", var, path) : 0;
    if (r < 0) return r;
    struct scan sc = {.L = L, .path = path, .profile = profile, .config_syntax = config_syntax, .p = p};
    r = ini_parse(L, path, text, scan_entry, &sc);
    const char *services = p->services[0] ? p->services : NULL;
    if (r == 0 && config_syntax && services) {
        struct scan sc2 = {.L = L, .path = path, .profile = profile, .config_syntax = 1, .services = services, .p = p};
        r = ini_parse(L, path, text, scan_entry, &sc2);
    }
    explicit_bzero(text, strlen(text));
    free(text);
    return r;
}

/* ---- putting it together -------------------------------------------------------------- */

struct files {
    char cred_path[1024], conf_path[1024];
    struct prof cred, conf; /* the profile as each file has it */
};

/* Pick a profile value: the credentials file's if set, else the config file's. */
static const char *pick(const struct files *f, size_t off, const char **pathp, int line_off, int *linep)
{
    const char *c = (const char *)&f->cred + off, *g = (const char *)&f->conf + off;
    const struct prof *from = *c ? &f->cred : *g ? &f->conf : NULL;
    if (!from) return NULL;
    *pathp = from == &f->cred ? f->cred_path : f->conf_path;
    *linep = *(const int *)((const char *)from + line_off);
    return from == &f->cred ? c : g;
}
#define PICK(f, field, linefield, pathp, linep) \
    pick((f), offsetof(struct prof, field), (pathp), offsetof(struct prof, linefield), (linep))

static int load_files(struct loader *L, struct aws_settings *a, struct files *f, int explicit_profile)
{
    const char *home = env(L, "HOME");
    if (home && home[0] != '/') home = NULL;
    const char *cv = env(L, "AWS_SHARED_CREDENTIALS_FILE"), *gv = env(L, "AWS_CONFIG_FILE");
    int r = resolve_path(L, "AWS_SHARED_CREDENTIALS_FILE", cv, home, ".aws/credentials", f->cred_path,
                         sizeof f->cred_path);
    if (r < 0) return r;
    r = resolve_path(L, "AWS_CONFIG_FILE", gv, home, ".aws/config", f->conf_path, sizeof f->conf_path);
    if (r < 0) return r;
    r = load_profile(L, f->cred_path, "AWS_SHARED_CREDENTIALS_FILE", cv != NULL, 0, a->profile, &f->cred);
    if (r == 0) r = load_profile(L, f->conf_path, "AWS_CONFIG_FILE", gv != NULL, 1, a->profile, &f->conf);
    if (r < 0) return r;
    if (explicit_profile && !f->cred.found && !f->conf.found)
        return fail(L, -EINVAL, "AWS_PROFILE: profile '%s' is in neither %s nor %s", a->profile,
                    f->cred_path[0] ? f->cred_path : "(no credentials file)",
                    f->conf_path[0] ? f->conf_path : "(no config file)");
    return 0;
}

/* creds_source is human text; a long path in it is cut short, which is fine. */
static void set_source(struct aws_settings *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_source(struct aws_settings *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->creds_source, sizeof a->creds_source, fmt, ap);
    va_end(ap);
}

static int take_token(struct aws_settings *a, const char *t)
{
    if (!t || !*t) return 0;
    a->session_token = strdup(t);
    return a->session_token ? 0 : -ENOMEM;
}

static int creds_from_env(struct loader *L, struct aws_settings *a)
{
    const char *ak = env(L, "AWS_ACCESS_KEY_ID"), *sk = env(L, "AWS_SECRET_ACCESS_KEY");
    if (!ak && !sk) return 0;
    if (!ak || !sk)
        return fail(L, -EINVAL, "%s is set but %s is not", ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                    ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    if (set_field(a->access_key, sizeof a->access_key, ak) < 0)
        return fail(L, -EINVAL, "AWS_ACCESS_KEY_ID is too long (at most %zu bytes)", sizeof a->access_key - 1);
    if (set_field(a->secret_key, sizeof a->secret_key, sk) < 0)
        return fail(L, -EINVAL, "AWS_SECRET_ACCESS_KEY is too long (at most %zu bytes)", sizeof a->secret_key - 1);
    const char *tok = env(L, "AWS_SESSION_TOKEN");
    int r = take_token(a, tok ? tok : env(L, "AWS_SECURITY_TOKEN"));
    if (r < 0) return r;
    a->have_creds = 1;
    set_source(a, "environment");
    return 1;
}

/* Take the key pair from one file's profile; 1 if taken, 0 if it has none. */
static int creds_from_prof(struct loader *L, struct aws_settings *a, const struct prof *p, const char *path)
{
    if (!p->access_key[0] && !p->secret_key[0]) return 0;
    if (!p->access_key[0] || !p->secret_key[0])
        return fail(L, -EINVAL, "%s: profile '%s' has %s but no %s", path, a->profile,
                    p->access_key[0] ? "aws_access_key_id" : "aws_secret_access_key",
                    p->access_key[0] ? "aws_secret_access_key" : "aws_access_key_id");
    memcpy(a->access_key, p->access_key, sizeof a->access_key);
    memcpy(a->secret_key, p->secret_key, sizeof a->secret_key);
    int r = take_token(a, p->token);
    if (r < 0) return r;
    a->have_creds = 1;
    set_source(a, "profile '%s' in %s", a->profile, path);
    return 1;
}

static int load_creds(struct loader *L, struct aws_settings *a, const struct files *f)
{
    if (a->anonymous) {
        set_source(a, "none: S3SHIM_NO_SIGN asks for unsigned requests");
        return 0;
    }
    int r = creds_from_env(L, a);
    if (r == 0) r = creds_from_prof(L, a, &f->cred, f->cred_path);
    if (r == 0) r = creds_from_prof(L, a, &f->conf, f->conf_path);
    if (r != 0) return r < 0 ? r : 0;
    const struct prof *u = f->cred.unsupported ? &f->cred : f->conf.unsupported ? &f->conf : NULL;
    if (u)
        set_source(a, "none: profile '%s' uses %s, which s3shim does not support",
                 a->profile, u->unsupported);
    else
        set_source(a, "none");
    return 0;
}

static int region_ok(const char *r)
{
    if (!*r) return 0;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= 'A' && *r <= 'Z') || (*r >= '0' && *r <= '9') || *r == '-' ||
              *r == '_' || *r == '.'))
            return 0;
    return 1;
}

static int load_region(struct loader *L, struct aws_settings *a, const struct files *f)
{
    const char *var = env(L, "AWS_REGION") ? "AWS_REGION" : env(L, "AWS_DEFAULT_REGION") ? "AWS_DEFAULT_REGION" : NULL;
    const char *path = NULL;
    int line = 0;
    const char *v = var ? env(L, var) : PICK(f, region, region_line, &path, &line);
    if (!v) return 0;
    if (!region_ok(v) || set_field(a->region, sizeof a->region, v) < 0) {
        if (var) return fail(L, -EINVAL, "%s: '%s' is not a region name", var, v);
        return fail(L, -EINVAL, "%s:%d: region '%s' is not a region name", path, line, v);
    }
    return 0;
}

/* Every comma-separated entry must be an http:// or https:// URL. */
static int endpoint_ok(const char *v)
{
    const char *p = v;
    for (;;) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, ",");
        const char *q = p + n;
        while (q > p && (q[-1] == ' ' || q[-1] == '\t')) q--;
        size_t len = (size_t)(q - p);
        if (!((len > 7 && strncasecmp(p, "http://", 7) == 0) || (len > 8 && strncasecmp(p, "https://", 8) == 0)))
            return 0;
        for (const char *c = p; c < q; c++)
            if ((unsigned char)*c <= ' ' || *c == 0x7f) return 0;
        if (!p[n]) return 1;
        p += n + 1;
    }
}

static int load_endpoint(struct loader *L, struct aws_settings *a, const struct files *f)
{
    const char *iv = env(L, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    int ignore = iv ? cfg_parse_bool(iv) : -1;
    if (iv && ignore < 0)
        return fail(L, -EINVAL, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: '%s' is not true or false", iv);
    if (ignore < 0) ignore = f->cred.ignore_endpoints >= 0 ? f->cred.ignore_endpoints : f->conf.ignore_endpoints;
    if (ignore > 0) return 0;
    const char *var = env(L, "AWS_ENDPOINT_URL_S3") ? "AWS_ENDPOINT_URL_S3"
                      : env(L, "AWS_ENDPOINT_URL")  ? "AWS_ENDPOINT_URL"
                                                    : NULL;
    const char *path = NULL, *v = NULL;
    int line = 0;
    if (var) v = env(L, var);
    if (!v) v = PICK(f, services_s3_endpoint, services_s3_line, &path, &line);
    if (!v) v = PICK(f, s3_endpoint, s3_endpoint_line, &path, &line);
    if (!v) v = PICK(f, endpoint, endpoint_line, &path, &line);
    if (!v) return 0;
    if (!endpoint_ok(v) || set_field(a->endpoint, sizeof a->endpoint, v) < 0) {
        if (var) return fail(L, -EINVAL, "%s: '%s' is not an http:// or https:// URL (or a comma-separated list of them)", var, v);
        return fail(L, -EINVAL, "%s:%d: endpoint_url '%s' is not an http:// or https:// URL", path, line, v);
    }
    return 0;
}

static int load_ca(struct loader *L, struct aws_settings *a, const struct files *f)
{
    const char *home = env(L, "HOME"), *path = NULL;
    int line = 0;
    if (home && home[0] != '/') home = NULL;
    const char *v = env(L, "AWS_CA_BUNDLE");
    char what[1100];
    if (v) {
        snprintf(what, sizeof what, "AWS_CA_BUNDLE");
    } else {
        v = PICK(f, ca_bundle, ca_line, &path, &line);
        if (!v) return 0;
        snprintf(what, sizeof what, "%s:%d: ca_bundle", path, line);
    }
    int r = resolve_path(L, what, v, home, NULL, a->ca_bundle, sizeof a->ca_bundle);
    return r < 0 ? r : 0;
}

/* As the AWS CLI: AWS_MAX_ATTEMPTS, then the profile's max_attempts; the first attempt counts. */
static int load_attempts(struct loader *L, struct aws_settings *a, const struct files *f)
{
    const char *path = NULL;
    int line = 0;
    const char *v = env(L, "AWS_MAX_ATTEMPTS");
    if (!v) v = PICK(f, attempts, attempts_line, &path, &line);
    if (!v) return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > 100) {
        if (!path) return fail(L, -EINVAL, "AWS_MAX_ATTEMPTS: '%s' is not a whole number from 1 to 100", v);
        return fail(L, -EINVAL, "%s:%d: max_attempts '%s' is not a whole number from 1 to 100", path, line, v);
    }
    a->max_attempts = (int)n;
    return 0;
}

static int load_all(struct loader *L, struct aws_settings *a, struct files *f)
{
    const char *nosign = env(L, "S3SHIM_NO_SIGN");
    if (nosign) {
        a->anonymous = cfg_parse_bool(nosign);
        if (a->anonymous < 0) return fail(L, -EINVAL, "S3SHIM_NO_SIGN: '%s' is not 1/true/yes or 0/false/no", nosign);
    }
    const char *pv = env(L, "AWS_PROFILE");
    if (!pv) pv = env(L, "AWS_DEFAULT_PROFILE");
    if (set_field(a->profile, sizeof a->profile, pv ? pv : "default") < 0)
        return fail(L, -EINVAL, "AWS_PROFILE: profile name is too long (at most %zu bytes)", sizeof a->profile - 1);
    int r = load_files(L, a, f, pv != NULL);
    if (r == 0) r = load_creds(L, a, f);
    if (r == 0) r = load_region(L, a, f);
    if (r == 0) r = load_endpoint(L, a, f);
    if (r == 0) r = load_ca(L, a, f);
    if (r == 0) r = load_attempts(L, a, f);
    return r;
}

int aws_settings_load(struct aws_settings *a, aws_getenv_fn get, void *ctx, char *err, size_t errlen)
{
    struct loader L = {get ? get : cfg_process_env, ctx, err, errlen};
    if (err && errlen) err[0] = '\0';
    memset(a, 0, sizeof *a);
    snprintf(a->region, sizeof a->region, "us-east-1");
    struct files *f = calloc(1, sizeof *f);
    if (!f) return fail(&L, -ENOMEM, "out of memory reading the AWS settings");
    int r = load_all(&L, a, f);
    prof_free(&f->cred);
    prof_free(&f->conf);
    free(f);
    if (r < 0) {
        if (r == -ENOMEM && err && errlen && !err[0]) fail(&L, r, "out of memory reading the AWS settings");
        aws_settings_free(a);
    }
    return r;
}

void aws_settings_free(struct aws_settings *a)
{
    if (a->session_token) {
        explicit_bzero(a->session_token, strlen(a->session_token));
        free(a->session_token);
    }
    explicit_bzero(a, sizeof *a);
}

int bk_s3_explain(char *buf, size_t len)
{
    struct aws_settings a;
    if (aws_settings_load(&a, NULL, NULL, buf, len) < 0) return -1;
    snprintf(buf, len, "credentials\t%s\n%s%s%sregion\t%s\nendpoint\t%s\n%s%s%sattempts\t%d per request\n",
             a.anonymous ? "none (S3SHIM_NO_SIGN)" : a.have_creds ? a.creds_source : "none found",
             a.have_creds ? "access key\t" : "", a.have_creds ? a.access_key : "", a.have_creds ? "\n" : "",
             a.region, a.endpoint[0] ? a.endpoint : "(AWS)", a.ca_bundle[0] ? "CA bundle\t" : "", a.ca_bundle,
             a.ca_bundle[0] ? "\n" : "", a.max_attempts > 0 ? a.max_attempts : AWS_DEFAULT_ATTEMPTS);
    aws_settings_free(&a);
    return 0;
}
