/* log.c - see log.h. The write goes straight to the kernel (syscall) so that a log line
 * from inside an interposed call can never recurse into the shim's own write(). */
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

static int log_level_cur = SLOG_WARN;
static int log_fd = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void slog_setup(int level, int fd)
{
    log_level_cur = level;
    log_fd = fd;
}

int slog_level(void) { return log_level_cur; }

int slog_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    return -1;
}

const char *slog_level_name(int level)
{
    return level >= 0 && level < 4 ? level_names[level] : "?";
}

void slog(int level, const char *fmt, ...)
{
    if (level > log_level_cur) return;
    int saved = errno;
    char line[1024];
    int n = snprintf(line, sizeof line, "s3shim[%ld]: %s: ", (long)sys.syscall(SYS_getpid),
                     level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    sys.syscall(SYS_write, log_fd >= 0 ? log_fd : 2, line, len);
    errno = saved;
}
