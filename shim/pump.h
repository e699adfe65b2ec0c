/* pump.h - shim descriptions at fds 0, 1 and 2, served through a pipe.
 *
 * glibc's stdin, stdout and stderr streams (printf, fgets, the shell's builtins) reach
 * the kernel through internal symbols that no preload library can interpose. So when a
 * description lands on fd 0, 1 or 2 (a shell redirect, or inherited across exec), that
 * fd becomes one end of a pipe and a thread moves bytes between the pipe and the
 * description: the program, its stdio and its forked children all see a working stream.
 * The description's offset stays exact: before exec the pump stops, gives back what it
 * read ahead, and puts the placeholder back, and the new program starts its own pump.
 * Pumped fds are sequential, like a pipe: lseek on them fails with ESPIPE. */
#ifndef S3SHIM_PUMP_H
#define S3SHIM_PUMP_H

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
/* At exit: finish every pump this process owns. */
void pump_finish_all(void);

#endif
