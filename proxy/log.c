/* log.c - see log.h. */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>

enum log_level log_min = LOG_INFO;

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	char ts[32], line[1024];
	va_list ap;

	if (lvl < log_min)
		return;
	time_rfc3339(ts, sizeof(ts));
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads never interleave. */
	fprintf(stderr, "%s whmgate[%s]: %s\n", ts, names[lvl], line);
}
