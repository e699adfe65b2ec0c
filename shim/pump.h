/* pump.h - shim descriptions at fds 0, 1 and 2, served through a pipe.
 *
 * glibc's stdin, stdout and stderr streams (printf, fgets, the shell's builtins) reach
 * the kernel through internal symbols that no preload library can interpose. So when a
 * description lands on fd 0, 1 or 2 (a shell redirect, or inherited across exec), that
 * fd becomes one end of a pipe and a thread moves bytes between the pipe and the
 * description: the program, its stdio and its forked children all see a working stream.
 * The description's offset stays exact: before exec the pump stops, gives back what it
 * read ahead, and puts the placeholder back, and the new program starts its own pump.
 * A pumped stdin still behaves as the file for lseek, pread and fstat (head and tail
 * seek on it); only glibc's own fseek on stdin sees the pipe. A pumped stdout or stderr
 * is sequential, like a pipe: lseek on it fails with ESPIPE. */
#ifndef S3SHIM_PUMP_H
#define S3SHIM_PUMP_H

#include <sys/stat.h>
#include <sys/types.h>

struct ofd;

/* Serve fd (0-2, currently a placeholder for o) through a pipe. Takes over the caller's
 * reference to o on success (returns 0); on -1 nothing changed. */
int pump_install(int fd, struct ofd *o);
/* The program closed (or replaced) pumped fd: finish the transfer and release the
 * description. Returns the result of the description's close (0 or -errno). */
int pump_finish(int fd);
/* Before exec: stop this process's pumps and put the placeholders back. */
void pump_before_exec(void);
/* exec failed: start them again. */
void pump_after_exec_failed(void);
/* lseek, pread, fstat on a pumped fd (-errno on failure). */
off_t pump_lseek(int fd, off_t off, int whence);
ssize_t pump_pread(int fd, void *buf, size_t n, off_t off);
int pump_fstat(int fd, struct stat *st);
/* In a forked child: the pumps stay with the parent; reset the lock. */
void pump_atfork_child(void);
/* At exit: finish every pump this process owns. */
void pump_finish_all(void);

#endif
