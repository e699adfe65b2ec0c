/* early_ctor.c - a library whose constructor does file I/O before libs3shim.so's own
 * constructor has run (tests/integration/run.sh preloads it after the shim, so it is
 * initialised first). Every call it makes reaches the shim's wrappers while the real
 * entry points are still the bootstrap stubs (shim/real.c), variadic open and fcntl
 * included; it prints what each returned. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((constructor)) static void early(void)
{
    const char *f = getenv("EARLY_FILE");
    char buf[64] = "", line[256];
    struct stat st = {0};
    if (!f) return;
    int fd = open(f, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    int cloexec = fd >= 0 ? (fcntl(fd, F_GETFD) & FD_CLOEXEC) : -1;
    int fs = fd >= 0 ? fstat(fd, &st) : -1;
    int cl = fd >= 0 ? close(fd) : -1;
    struct stat st2;
    int missing = stat("/nonexistent-s3shim-early", &st2);
    snprintf(line, sizeof line, "early open=%d read=%zd buf=%s cloexec=%d fstat=%d size=%lld close=%d missing=%d\n",
             fd >= 0, n, buf, cloexec, fs, (long long)st.st_size, cl, missing);
    if (write(1, line, strlen(line)) < 0) _exit(3);
}
