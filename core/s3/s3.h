/* s3.h - the S3 wing as the rest of s3shim sees it.
 *
 * Everything else in core/s3/ is private to the wing: the engine reaches S3 only through
 * the vtable below, and the configuration and the command only through the names and
 * the explanation declared here. Inside the wing the layers run one way:
 *
 *   backend_s3.c (namespace) -> s3_file.c, s3_read.c, s3_write.c -> s3_meta.c (path, stat cache)
 *        -> s3_client.c (requests, retries, hedging) -> balance.c, http.c -> curl_api.c
 *   with sigv4.c, aws_config.c and s3_xml.c beside them as leaves. */
#ifndef S3SHIM_S3_H
#define S3SHIM_S3_H

#include "../backend.h"

#include <stddef.h>

extern const struct backend_ops bk_s3_ops;

/* S3SHIM_BALANCE: how each request picks its endpoint. */
enum bal_policy { BAL_SEWT = 0, BAL_LEAST, BAL_RR };
/* Parse "sewt", "least", "rr". -1 if none. */
int bal_policy_parse(const char *s);
const char *bal_policy_name(enum bal_policy p);

/* For `s3shim config`: the AWS settings S3 mounts will use, as "label\tvalue" lines in
 * buf (secrets never shown). Returns 0, or -1 with the reason in buf when they cannot be
 * used (missing or malformed credentials, a bad endpoint). */
int bk_s3_explain(char *buf, size_t len);

/* The directory S3 staging files go to: `configured` (S3SHIM_STAGING_DIR) or the default. */
void bk_s3_staging_dir(const char *configured, char *buf, size_t len);

/* The run's first process is ending without destructors (_exit): remove the run's
 * shared table of S3 generations (s3_gen.h). Nothing in any other process. */
void bk_s3_at_exit(void);

/* The process ends (exit, _exit, exec): every temporary of this process not renamed or
 * removed (s3_stage_tmp.c) is uploaded under its name. Returns how many could not be. */
int bk_s3_tmp_at_end(void);

#endif
