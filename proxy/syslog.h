/* syslog.h - a copy of the audit trail to syslog as RFC 5424 messages, over
 * a unix socket ("unix:/dev/log", datagram or stream) or TCP ("tcp:HOST:PORT",
 * octet-counted framing, RFC 6587). The file stays the source of truth: the
 * copy runs on its own thread with a bounded queue, so a slow or dead peer
 * never blocks or fails a request; what cannot be sent is dropped and
 * counted. */
#ifndef WHMGATE_SYSLOG_H
#define WHMGATE_SYSLOG_H

#include <stddef.h>

struct syslog_out;

/* Checks a target string; returns NULL if valid, else why not. */
const char *syslog_check(const char *target);
/* Starts the sender thread. NULL on failure (bad target or no thread). */
struct syslog_out *syslog_open(const char *target, const char *hostname);
/* Queues one audit line (without newline); never blocks. */
void syslog_send(struct syslog_out *s, const char *line, size_t len);
/* Sends what is queued (bounded by a short timeout) and stops. */
void syslog_close(struct syslog_out *s);
unsigned long long syslog_dropped(struct syslog_out *s);

#endif
