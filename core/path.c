/* path.c - see path.h */
#include "path.h"

#include <string.h>

int path_normalize(const char *in, char *out, size_t outsz)
{
    if (in[0] != '/' || outsz < 2) return -1;
    size_t o = 0;
    out[o++] = '/';
    const char *p = in;
    while (*p) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != '/') e++;
        size_t n = (size_t)(e - p);
        if (n == 1 && p[0] == '.') {
            /* skip */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (o > 1) {
                o--; /* drop trailing component */
                while (o > 1 && out[o - 1] != '/') o--;
                if (o > 1) o--; /* remove the '/' before it, unless it is the root */
            }
        } else {
            if (o > 1) {
                if (o + 1 >= outsz) return -1;
                out[o++] = '/';
            }
            if (o + n >= outsz) return -1;
            memcpy(out + o, p, n);
            o += n;
        }
        p = e;
    }
    out[o] = '\0';
    return (int)o;
}

int path_join(const char *base, const char *rel, char *out, size_t outsz)
{
    if (rel[0] == '/') return path_normalize(rel, out, outsz);
    size_t bl = strlen(base), rl = strlen(rel);
    char tmp[bl + rl + 2];
    memcpy(tmp, base, bl);
    tmp[bl] = '/';
    memcpy(tmp + bl + 1, rel, rl + 1);
    return path_normalize(tmp, out, outsz);
}

bool path_is_normal(const char *p)
{
    if (p[0] != '/') return false;
    for (const char *s = p; *s; s++) {
        if (s[0] != '/') continue;
        if (s[1] == '/') return false;
        if (s[1] == '.' && (s[2] == '/' || s[2] == 0 || (s[2] == '.' && (s[3] == '/' || s[3] == 0))))
            return false;
        if (s[1] == 0 && s != p) return false; /* trailing slash */
    }
    return true;
}

size_t path_under(const char *path, const char *prefix, size_t prefix_len)
{
    if (strncmp(path, prefix, prefix_len) != 0) return 0;
    char c = path[prefix_len];
    if (c == '\0' || c == '/') return prefix_len;
    if (prefix_len == 1 && prefix[0] == '/') return 1;
    return 0;
}
