/* backend_file.h - the parts of file:// that other local backends reuse.
 *
 * direct:// has exactly file://'s namespace (lookups confined with RESOLVE_BENEATH,
 * unlink, rename, mkdir, stat, directories...) and differs only in how an open file
 * moves its bytes. Its mount state therefore starts with a struct file_mount, so every
 * namespace function below takes either backend's mount state as it is. */
#ifndef S3SHIM_BACKEND_FILE_H
#define S3SHIM_BACKEND_FILE_H

#include "../backend.h"

struct file_mount {
    int rootfd; /* O_PATH, parked */
    char *root;
};

/* Set up fm for directory `where` ("/DIR"); -errno and a reason in err on failure. */
int fm_root_open(struct file_mount *fm, const char *scheme, const char *where, char *err, size_t errlen);
void fm_root_close(struct file_mount *fm);
/* open(2) of key below the root, never leaving it; returns a plain fd or -errno. */
int fm_open_beneath(struct file_mount *fm, const char *key, int flags, mode_t mode);

/* The namespace slots of bk_file_ops; ms points to (a struct starting with) file_mount. */
int fm_stat(void *ms, const char *key, struct stat *st, int nofollow);
int fm_access(void *ms, const char *key, int mode, int flags);
int fm_unlink(void *ms, const char *key);
int fm_rename(void *ms, const char *from, const char *to, unsigned flags);
int fm_mkdir(void *ms, const char *key, mode_t mode);
int fm_rmdir(void *ms, const char *key);
int fm_truncate(void *ms, const char *key, off_t len);
int fm_utimens(void *ms, const char *key, const struct timespec ts[2], int nofollow);
int fm_statvfs(void *ms, const char *key, struct statvfs *sv);
int fm_local_path(void *ms, const char *key, char *buf, size_t len);
int fm_opendir(void *ms, const char *key, void **dh);
int fm_readdir(void *dh, struct bk_dirent *ent);
void fm_closedir(void *dh);

#endif
