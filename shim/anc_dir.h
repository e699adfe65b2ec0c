/* anc_dir.h - listings of the directories above mount prefixes show the mounts' names. */
#ifndef S3SHIM_ANC_DIR_H
#define S3SHIM_ANC_DIR_H

#include <dirent.h>
#include <stdint.h>

/* The inode number a directory above a mount prefix that is not on disk shows, in stat
 * and in its parent's listing: one of its own (`find` takes two directories of one
 * number for a loop), from its path (dir, then "/name" if name). */
static inline uint64_t anc_dir_ino(const char *dir, const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = dir; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    if (name) {
        if (!(dir[0] == '/' && dir[1] == '\0')) h = (h ^ '/') * 1099511628211ull;
        for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    }
    return h | 2; /* (never 0 or 1, the root's) */
}

/* Streams noted: readdir of libc's streams looks further only when this is not 0. */
extern _Atomic int anc_dir_n;

/* d lists vpath, a directory above a mount prefix (virt: a stand-in, with no entries of
 * its own): once its own entries are done it goes on with the mounts' names below. */
void anc_dir_track(DIR *d, const char *vpath, int virt);
/* fdopendir(fd) gave d: noted if fd is a stand-in or a real directory missing a mount's
 * name (an fstat, and a readlink for a removed directory). */
void anc_dir_track_fd(DIR *d, int fd);
/* readdir of a stream: 0 if not noted, else 1 with *out (NULL at the end; errno as
 * readdir leaves it). */
int anc_dir_read(DIR *d, struct dirent **out);
/* telldir and seekdir of a noted stream: positions are entries given since its start
 * (the kernel's cookie would not say where among the mounts' names it was); seekdir
 * lists again from the start. 0 if d is not noted. rewinddir is seek 0. */
int anc_dir_tell(DIR *d, long *pos);
int anc_dir_seek(DIR *d, long pos);
void anc_dir_forget(DIR *d); /* closedir */
void anc_dir_atfork_child(void);

#endif
