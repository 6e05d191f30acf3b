/* syslog.c - see syslog.h.
 *
 * One thread per target. It takes lines off a queue (bounded in count and
 * bytes; a full queue drops the newest line and counts it), connects when it
 * has none, sends each line with a send timeout, and on any error closes,
 * waits a second and tries again; lines that fail are dropped (counted). */
#define _GNU_SOURCE
#include "syslog.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define SYSLOG_QUEUE_MAX 10000
#define SYSLOG_QUEUE_BYTES (16u << 20)
#define SYSLOG_PRI 86           /* authpriv.info */

struct line {
	struct line *next;
	size_t len;
	char data[];
};

struct syslog_out {
	char *path;              /* unix socket path, or NULL */
	char *host, *port;       /* TCP */
	char *hostname;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cond;
	struct line *head, *tail;
	size_t n, bytes;
	int stop;
	unsigned long long dropped;
	int fd, dgram;
};

const char *
syslog_check(const char *t)
{
	const char *colon;

	if (strncmp(t, "unix:", 5) == 0)
		return t[5] == '/' && strlen(t + 5) < sizeof(((struct sockaddr_un *)0)->sun_path) ?
		    NULL : "unix: needs an absolute socket path";
	if (strncmp(t, "tcp:", 4) == 0) {
		colon = strrchr(t + 4, ':');
		if (colon == NULL || colon == t + 4 || atoi(colon + 1) <= 0 ||
		    atoi(colon + 1) > 65535)
			return "must be tcp:HOST:PORT";
		return NULL;
	}
	return "must be \"unix:/path\" or \"tcp:HOST:PORT\"";
}

static void
set_timeout(int fd)
{
	struct timeval tv = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int
connect_unix(struct syslog_out *s)
{
	struct sockaddr_un sun;
	int types[2] = { SOCK_DGRAM, SOCK_STREAM }, i, fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->path);
	/* /dev/log is a datagram socket on most systems; rsyslog can also
	 * offer a stream one. */
	for (i = 0; i < 2; i++) {
		if ((fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0)) == -1)
			continue;
		set_timeout(fd);
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			s->dgram = types[i] == SOCK_DGRAM;
			return fd;
		}
		close(fd);
	}
	return -1;
}

static int
connect_tcp(struct syslog_out *s)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(s->host, s->port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol)) == -1)
			continue;
		set_timeout(fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	s->dgram = 0;
	return fd;
}

static int
send_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Formats and sends one line; -1 if the connection failed. */
static int
send_line(struct syslog_out *s, struct line *l)
{
	struct buf m, framed;
	char ts[32];
	int rc;

	time_rfc3339(ts, sizeof(ts));
	buf_init(&m);
	buf_printf(&m, "<%d>1 %s %s whmgate %d audit - ", SYSLOG_PRI, ts,
	    s->hostname, (int)getpid());
	buf_add(&m, l->data, l->len);
	if (s->dgram || s->path) {
		/* Unix sockets: one message per datagram, or a newline
		 * after each on a stream (what rsyslog's imuxsock reads). */
		if (!s->dgram)
			buf_addc(&m, '\n');
		rc = s->dgram ? (send(s->fd, m.p, m.len, MSG_NOSIGNAL) ==
		    (ssize_t)m.len ? 0 : -1) : send_all(s->fd, m.p, m.len);
	} else {
		buf_init(&framed);
		buf_printf(&framed, "%zu ", m.len);
		buf_add(&framed, m.p, m.len);
		rc = send_all(s->fd, framed.p, framed.len);
		buf_fini(&framed);
	}
	buf_fini(&m);
	return rc;
}

static void
sender_main(void *arg)
{
	struct syslog_out *s = arg;
	struct line *l;
	int ok;

	uv_mutex_lock(&s->mu);
	for (;;) {
		while (s->head == NULL && !s->stop)
			uv_cond_wait(&s->cond, &s->mu);
		if ((l = s->head) == NULL)
			break;
		uv_mutex_unlock(&s->mu);
		if (s->fd == -1)
			s->fd = s->path ? connect_unix(s) : connect_tcp(s);
		ok = s->fd != -1 && send_line(s, l) == 0;
		if (!ok && s->fd != -1) {
			close(s->fd);
			s->fd = -1;
		}
		uv_mutex_lock(&s->mu);
		if (!ok && s->stop) {
			/* Shutting down on a dead peer: what is left is
			 * lost, and counted. */
			s->dropped += s->n;
			break;
		}
		if (ok) {
			s->head = l->next;
			if (s->head == NULL)
				s->tail = NULL;
			s->n--;
			s->bytes -= l->len;
			free(l);
		} else {
			/* The line stays first; retry in a second while the
			 * bound drops what no longer fits. */
			uv_cond_timedwait(&s->cond, &s->mu, 1000000000ull);
		}
	}
	uv_mutex_unlock(&s->mu);
}

static void
sout_free(struct syslog_out *s)
{
	uv_mutex_destroy(&s->mu);
	uv_cond_destroy(&s->cond);
	free(s->path);
	free(s->host);
	free(s->port);
	free(s->hostname);
	free(s);
}

struct syslog_out *
syslog_open(const char *target, const char *hostname)
{
	struct syslog_out *s;
	const char *colon;

	if (syslog_check(target) != NULL || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->fd = -1;
	if (strncmp(target, "unix:", 5) == 0) {
		s->path = xstrdup(target + 5);
	} else {
		colon = strrchr(target + 4, ':');
		s->host = xstrdup(target + 4);
		s->host[colon - (target + 4)] = '\0';
		s->port = xstrdup(colon + 1);
	}
	s->hostname = xstrdup(hostname && *hostname ? hostname : "-");
	/* RFC 5424: HOSTNAME is printable ASCII without spaces. */
	for (char *p = s->hostname; *p; p++)
		if (*p <= ' ' || *p > '~')
			*p = '_';
	uv_mutex_init(&s->mu);
	uv_cond_init(&s->cond);
	if (uv_thread_create(&s->thread, sender_main, s) != 0) {
		sout_free(s);
		return NULL;
	}
	return s;
}

void
syslog_send(struct syslog_out *s, const char *line, size_t len)
{
	struct line *l;

	uv_mutex_lock(&s->mu);
	if (s->n >= SYSLOG_QUEUE_MAX || s->bytes + len > SYSLOG_QUEUE_BYTES ||
	    (l = malloc(sizeof(*l) + len)) == NULL) {
		s->dropped++;
		uv_mutex_unlock(&s->mu);
		return;
	}
	memcpy(l->data, line, len);
	l->len = len;
	l->next = NULL;
	if (s->tail)
		s->tail->next = l;
	else
		s->head = l;
	s->tail = l;
	s->n++;
	s->bytes += len;
	uv_cond_signal(&s->cond);
	uv_mutex_unlock(&s->mu);
}

void
syslog_close(struct syslog_out *s)
{
	struct line *l;

	if (s == NULL)
		return;
	uv_mutex_lock(&s->mu);
	s->stop = 1;
	uv_cond_signal(&s->cond);
	uv_mutex_unlock(&s->mu);
	uv_thread_join(&s->thread);
	while ((l = s->head) != NULL) {
		s->head = l->next;
		free(l);
	}
	if (s->fd != -1)
		close(s->fd);
	sout_free(s);
}

unsigned long long
syslog_dropped(struct syslog_out *s)
{
	unsigned long long n;

	uv_mutex_lock(&s->mu);
	n = s->dropped;
	uv_mutex_unlock(&s->mu);
	return n;
}
