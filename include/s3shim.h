/* s3shim.h - the s3shim engine as a C library, without LD_PRELOAD.
 *
 * Paths are the same as under the preload library: a mount prefix ("/data/x" with
 * S3SHIM_MOUNTS="/data=file:///srv/data"), "/s3/BUCKET/KEY" or "s3://BUCKET/KEY".
 * Functions return -errno on failure (never set errno); link with -ls3shim. */
#ifndef S3SHIM_H
#define S3SHIM_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define S3SHIM_VERSION "0.1.0"
#define S3SHIM_API __attribute__((visibility("default")))

typedef struct s3shim s3shim;
typedef struct s3shim_file s3shim_file;

/* A new engine. mounts is an S3SHIM_MOUNTS-style map, or NULL to read the environment.
 * On failure returns NULL and, if err is given, a one-line reason. A malformed entry
 * is not fatal: it is reported in err and left out. */
S3SHIM_API s3shim *s3shim_new(const char *mounts, char *err, size_t errlen);
S3SHIM_API void s3shim_free(s3shim *s);

S3SHIM_API int s3shim_open(s3shim *s, const char *path, int flags, mode_t mode, s3shim_file **out);
S3SHIM_API ssize_t s3shim_pread(s3shim_file *f, void *buf, size_t len, off_t off);
S3SHIM_API ssize_t s3shim_pwrite(s3shim_file *f, const void *buf, size_t len, off_t off);
S3SHIM_API int s3shim_fstat(s3shim_file *f, struct stat *st);
S3SHIM_API int s3shim_fsync(s3shim_file *f);
/* Completes the file (an upload, on object stores); its result is the close's. */
S3SHIM_API int s3shim_close(s3shim_file *f);

S3SHIM_API int s3shim_stat(s3shim *s, const char *path, struct stat *st);
S3SHIM_API int s3shim_unlink(s3shim *s, const char *path);

S3SHIM_API const char *s3shim_version(void);

#ifdef __cplusplus
}
#endif

#endif
