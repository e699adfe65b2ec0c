/* local.h - the local wing (file:// and direct://) as the rest of s3shim sees it.
 *
 * Everything else in core/local/ is private to the wing. file:// is the reference arm:
 * a directory, every call passed to the kernel below a root it cannot leave. direct://
 * shares file://'s namespace (backend_file.h) and moves its bytes with O_DIRECT through
 * the engine's io_uring rings. Inside the wing the layers run one way:
 *
 *   backend_direct.c (mount) -> direct_file.c (open, close, fork) -> direct_read.c
 *        -> direct_write.c -> direct_io.c (one request, alignment, errors)
 *   backend_file.c (namespace, plain files) under both; dio_align.c a leaf. */
#ifndef S3SHIM_LOCAL_H
#define S3SHIM_LOCAL_H

#include "../backend.h"

#include <stddef.h>

struct cfg;

extern const struct backend_ops bk_file_ops;
extern const struct backend_ops bk_direct_ops;

/* For `s3shim config`: what a direct:// mount of DIR will do (alignment, fallback), in
 * one line. Returns 0, or -1 if DIR cannot be examined (the line says why). */
int bk_direct_explain(const char *dir, const struct cfg *cfg, char *buf, size_t len);

#endif
