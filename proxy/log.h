/* log.h - diagnostics on stderr, one line per event. Never the audit trail,
 * and never a secret: callers pass no key, token or Authorization value.
 *
 * When stderr is the journal (systemd sets JOURNAL_STREAM to stderr's
 * "device:inode"), each line is "<N>text" with N its syslog priority, as
 * sd-daemon(3) describes, and journald adds the time and the name; else a
 * line is "TIME whmgate[level]: text". A message holding newlines becomes
 * one line per piece, each with its own prefix. Safe from any thread. */
#ifndef WHMGATE_LOG_H
#define WHMGATE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

extern enum log_level log_min;

/* Looks at JOURNAL_STREAM and stderr once; call at start, before threads.
 * Without it lines are in the plain form. */
void log_init(void);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* 1 if JOURNAL_STREAM ("DEV:INO", decimal) names the file behind fd. */
int log_is_journal(const char *journal_stream, int fd);
/* Formats msg as the lines log_msg writes, into out (size outsz, always
 * terminated; lines that do not fit are cut). ts is used only in the plain
 * form. Returns the length written. */
size_t log_format(char *out, size_t outsz, enum log_level lvl, int journal,
    const char *ts, const char *msg);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)

#endif
