/* log.c - see log.h. */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum log_level log_min = LOG_INFO;
static int log_journal;

int
log_is_journal(const char *js, int fd)
{
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (js == NULL || *js == '\0')
		return 0;
	/* As sd-daemon's sd_journal_stream_fd check: stderr may have been
	 * redirected since systemd set the variable, so it counts only when
	 * the device and inode still match. */
	errno = 0;
	dev = strtoull(js, &end, 10);
	if (errno || end == js || *end != ':')
		return 0;
	js = end + 1;
	ino = strtoull(js, &end, 10);
	if (errno || end == js || *end != '\0')
		return 0;
	if (fstat(fd, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(void)
{
	log_journal = log_is_journal(getenv("JOURNAL_STREAM"), STDERR_FILENO);
}

size_t
log_format(char *out, size_t outsz, enum log_level lvl, int journal,
    const char *ts, const char *msg)
{
	/* syslog priorities: debug 7, info 6, warning 4, err 3. */
	static const char *names[] = { "debug", "info", "warn", "error" };
	static const char prio[] = { '7', '6', '4', '3' };
	const char *p = msg, *nl;
	size_t len = 0, n;
	int w;

	if (outsz == 0)
		return 0;
	out[0] = '\0';
	do {
		nl = strchr(p, '\n');
		n = nl ? (size_t)(nl - p) : strlen(p);
		/* A trailing newline or a blank piece is no line of its own. */
		if (n == 0 && p != msg)
			goto next;
		if (journal)
			w = snprintf(out + len, outsz - len, "<%c>%.*s\n",
			    prio[lvl], (int)n, p);
		else
			w = snprintf(out + len, outsz - len, "%s whmgate[%s]: %.*s\n",
			    ts, names[lvl], (int)n, p);
		if (w < 0)
			break;
		if ((size_t)w >= outsz - len) {
			/* Cut: the last line still ends in a newline. */
			len = outsz - 1;
			if (len > 0)
				out[len - 1] = '\n';
			out[len] = '\0';
			return len;
		}
		len += (size_t)w;
next:
		p = nl ? nl + 1 : NULL;
	} while (p && *p);
	return len;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	char ts[32], msg[1024], line[2048];
	va_list ap;
	size_t len, off = 0;
	ssize_t w;

	if (lvl < log_min)
		return;
	time_rfc3339(ts, sizeof(ts));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	len = log_format(line, sizeof(line), lvl, log_journal, ts, msg);
	/* One write per message so lines from several threads never
	 * interleave (the journal's stream is a socket, a file is O_APPEND
	 * or ours alone). */
	while (off < len) {
		w = write(STDERR_FILENO, line + off, len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}
