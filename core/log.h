/* log.h - the engine's diagnostics: one line per event, to stderr or S3SHIM_LOG_FILE.
 *
 * Logging must never re-enter the interposed API nor allocate on a hot path, so lines
 * are formatted into a stack buffer and written with one write(2). */
#ifndef S3SHIM_LOG_H
#define S3SHIM_LOG_H

enum slog_level { SLOG_ERROR = 0, SLOG_WARN = 1, SLOG_INFO = 2, SLOG_DEBUG = 3 };

/* Level and destination; fd < 0 means stderr. */
void slog_setup(int level, int fd);
int slog_level(void);
int slog_parse_level(const char *s); /* -1 if not a level name */
const char *slog_level_name(int level);
void slog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define slog_error(...) slog(SLOG_ERROR, __VA_ARGS__)
#define slog_warn(...) slog(SLOG_WARN, __VA_ARGS__)
#define slog_info(...) slog(SLOG_INFO, __VA_ARGS__)
#define slog_debug(...) \
    do { \
        if (slog_level() >= SLOG_DEBUG) slog(SLOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
