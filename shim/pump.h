/* pump.h - shim descriptions at fds 0, 1 and 2, served through a pipe.
 *
 * glibc's stdin, stdout and stderr streams (printf, fgets, the shell's builtins) reach
 * the kernel through internal symbols that no preload library can interpose. So when a
 * description lands on fd 0, 1 or 2 (a shell redirect, dd's of=, or inherited across
 * exec), that fd becomes one end of a pipe and a thread moves bytes between the pipe and
 * the description. The fd table keeps naming the description (a tagged slot), so every
 * call but read and write (lseek, fstat, futimens, ftruncate, pread...) acts on the file
 * itself. The pipe is only for what bypasses us (glibc's stdio internals, children
 * that share the pipe, programs without the shim): the program's own read, readv, write,
 * writev, splice, sendfile and copy_file_range go straight to the description, in order
 * with the pipe. A direct read first takes what the pump already put in the pipe or
 * holds (the program's position is the offset minus those bytes), then reads the file;
 * the IN pump fills the pipe only when bytes it put there were taken by a reader it
 * cannot see, or when the program's own reads have been quiet for a while (a reader
 * that bypasses us may be waiting). A direct write waits until everything written to
 * the pipe before it is stored. Before an operation that must see every byte written
 * (fstat, lseek, fsync...) the pump is drained. Before exec the pump stops, gives back
 * what it read ahead and restores the placeholder, and the new program starts its own.
 *
 * One pump per description per process. A forked child shares its parent's pipe and
 * uses it for every read and write: for the child such an fd has pipe semantics (lseek
 * fails with ESPIPE). */
#ifndef S3SHIM_PUMP_H
#define S3SHIM_PUMP_H

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ofd;

/* fd (0-2) holds o in the fd table, as a placeholder: serve it through a pipe.
 * Returns 0, or -1 with nothing changed. */
int pump_install(int fd, struct ofd *o);
/* A pumped fd is about to be closed or replaced by the program: an IN pump whose last
 * fd this is stops and gives back its read-ahead while the pipe can still be asked. */
void pump_detach(int fd);
/* After a pumped fd of o is gone: if none is left, finish the transfer and release the
 * pump. Returns its first failure (0 or -errno). */
int pump_release(struct ofd *o);

/* read, readv, write and writev on a pumped fd: straight to the description in the
 * process that owns the pump, through the pipe in any other; results as the syscalls'. */
ssize_t pump_read(int fd, void *buf, size_t n);
ssize_t pump_readv(int fd, const struct iovec *iov, int cnt);
ssize_t pump_write(int fd, const void *buf, size_t n);
ssize_t pump_writev(int fd, const struct iovec *iov, int cnt);
/* lseek on a pumped fd (or -errno). */
off_t pump_lseek(int fd, struct ofd *o, off_t off, int whence);
/* Wait until everything written to o's pipe has reached o (0 or -errno). */
int pump_sync(struct ofd *o);

/* Before exec: stop this process's pumps and put the placeholders back. When the next
 * program will not have the shim (shim_follows 0), a file of a local backend is put
 * there instead as a plain descriptor of the file itself, at the program's position. */
void pump_before_exec(int shim_follows);
/* exec failed: serve fds 0-2 again. */
void pump_after_exec_failed(void);
/* fork: prepare waits until no pump thread is moving bytes and holds them still; the
 * parent lets them go; in the child the pumps stay the parent's and the locks are reset. */
void pump_atfork_prepare(void);
void pump_atfork_parent(void);
void pump_atfork_child(void);
/* At exit: finish every pump this process owns. Returns how many failed to store. */
int pump_finish_all(void);

#endif
