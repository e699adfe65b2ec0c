/* kio.h - shim descriptors exposed to the program's own kernel I/O (wrap_kio.c). */
#ifndef S3SHIM_KIO_H
#define S3SHIM_KIO_H

/* The program makes kernel I/O requests of its own (set once, never cleared). */
extern _Atomic int kio_on;

/* Turn exposure on and expose every shim descriptor of a local file. */
void kio_enable(void);
/* A descriptor just opened (with kio_on). */
void kio_expose_fd(int fd);
/* After a fork (both processes), a spawn or a failed exec: a promotion pointed the
 * exposed descriptors back at their shared memfd. */
void kio_reexpose(void);
/* Before an exec or a spawn: the new program must find its inherited descriptors. */
void kio_hide(void);

#endif
