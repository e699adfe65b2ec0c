/* path.h - lexical path arithmetic shared by routing and the backends.
 *
 * Normalisation is purely lexical (no symlink lookup): '//' and '/.' collapse, '..'
 * removes the previous component and never climbs above '/'. A key produced from a
 * normalised path therefore can never contain '..' and can never leave its mount. */
#ifndef S3SHIM_PATH_H
#define S3SHIM_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Normalise absolute path `in` into `out` (size outsz). Returns length, or -1 if it does
 * not fit or `in` is not absolute. */
int path_normalize(const char *in, char *out, size_t outsz);

/* Join base (absolute, normalised) and rel, then normalise. rel may be absolute, in
 * which case base is ignored. Returns length or -1. */
int path_join(const char *base, const char *rel, char *out, size_t outsz);

/* True if an absolute path is already in normal form (cheap scan, no copy). */
bool path_is_normal(const char *p);

/* True if `path` equals `prefix` or continues below it ("/a" covers "/a" and "/a/b",
 * not "/ab"). Returns the offset of the remainder (0 = prefix not covering). */
size_t path_under(const char *path, const char *prefix, size_t prefix_len);

#endif
