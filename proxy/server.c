/* server.c - listeners and the connection cap.
 *
 * At max_connections a listener stops accepting: libuv stops polling a
 * listening socket whose connection callback did not call uv_accept, and
 * the kernel's backlog holds the rest. When a connection closes, the
 * paused listeners accept again. */
#include "server.h"
#include "conf.h"
#include "conn.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static void
on_connection(uv_stream_t *ls, int status)
{
	struct listener *l = ls->data;
	struct server *s = l->srv;

	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	if (s->nconns >= (size_t)s->conf->limits.max_connections) {
		l->paused = 1;
		return;
	}
	conn_accept(s, ls);
}

void
server_conn_closed(struct server *s)
{
	size_t i;

	for (i = 0; i < s->nls; i++) {
		if (!s->ls[i].paused || s->draining)
			continue;
		if (s->nconns >= (size_t)s->conf->limits.max_connections)
			return;
		s->ls[i].paused = 0;
		/* The pending connection is accepted now; libuv then
		 * resumes polling the listening socket. */
		conn_accept(s, (uv_stream_t *)&s->ls[i].tcp);
	}
}

int
server_parse_addr(const char *hostport, struct sockaddr_storage *ss)
{
	char host[64];
	const char *colon;
	size_t hl;
	int port;

	if (hostport[0] == '[') {
		colon = strstr(hostport, "]:");
		if (colon == NULL || (hl = (size_t)(colon - hostport - 1)) >= sizeof(host))
			return -1;
		memcpy(host, hostport + 1, hl);
		host[hl] = '\0';
		port = atoi(colon + 2);
		return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
	}
	colon = strrchr(hostport, ':');
	if (colon == NULL || (hl = (size_t)(colon - hostport)) >= sizeof(host))
		return -1;
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	port = atoi(colon + 1);
	return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

int
server_listen(struct server *s)
{
	struct sockaddr_storage ss;
	struct listener *l;
	size_t i;
	int rc;

	s->ls = calloc(s->conf->nlisten, sizeof(*s->ls));
	if (s->ls == NULL)
		return -1;
	for (i = 0; i < s->conf->nlisten; i++) {
		l = &s->ls[i];
		l->srv = s;
		memset(&ss, 0, sizeof(ss));
		if (server_parse_addr(s->conf->listen[i], &ss) != 0) {
			log_err("listen %s: bad address", s->conf->listen[i]);
			return -1;
		}
		uv_tcp_init(s->loop, &l->tcp);
		l->tcp.data = l;
		s->nls++;
		if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) != 0 ||
		    (rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection)) != 0) {
			log_err("listen %s: %s", s->conf->listen[i], uv_strerror(rc));
			return -1;
		}
		log_info("listening on http://%s", s->conf->listen[i]);
	}
	return 0;
}

void
server_stop_listening(struct server *s)
{
	size_t i;

	for (i = 0; i < s->nls; i++)
		if (!uv_is_closing((uv_handle_t *)&s->ls[i].tcp))
			uv_close((uv_handle_t *)&s->ls[i].tcp, NULL);
}
