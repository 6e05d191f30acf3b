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
#include "tls.h"
#include "util.h"

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

static int
bind_one(struct server *s, struct listener *l, const char *addr)
{
	struct sockaddr_storage ss;
	int rc;

	memset(&ss, 0, sizeof(ss));
	if (server_parse_addr(addr, &ss) != 0) {
		log_err("listen %s: bad address", addr);
		return -1;
	}
	uv_tcp_init(s->loop, &l->tcp);
	l->tcp.data = l;
	s->nls++;
	if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection)) != 0) {
		log_err("listen %s: %s", addr, uv_strerror(rc));
		return -1;
	}
	log_info("listening on %s://%s", l->tls_index >= 0 ? "https" : "http",
	    addr);
	return 0;
}

int
server_tls_reload(struct server *s, const struct conf *c, struct buf *err)
{
	SSL_CTX **fresh;
	size_t i;

	if (c->ntls == 0)
		return 0;
	if ((fresh = calloc(c->ntls, sizeof(*fresh))) == NULL)
		return -1;
	for (i = 0; i < c->ntls; i++)
		if ((fresh[i] = tls_ctx_new(&c->tls[i], err)) == NULL)
			break;
	if (i < c->ntls) {
		while (i-- > 0)
			SSL_CTX_free(fresh[i]);
		free(fresh);
		return -1;
	}
	/* Connections hold their own reference (SSL_new): the old contexts
	 * go once the last of them closes. */
	for (i = 0; i < s->nls; i++) {
		struct listener *l = &s->ls[i];
		if (l->tls_index < 0)
			continue;
		SSL_CTX_free(l->ctx);
		l->ctx = fresh[l->tls_index];
		fresh[l->tls_index] = NULL;
	}
	for (i = 0; i < c->ntls; i++)
		SSL_CTX_free(fresh[i]);
	free(fresh);
	return 0;
}

int
server_listen(struct server *s)
{
	struct buf err;
	size_t i, n = s->conf->nlisten + s->conf->ntls;

	s->ls = calloc(n ? n : 1, sizeof(*s->ls));
	if (s->ls == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		s->ls[i].srv = s;
		s->ls[i].tls_index = i < s->conf->nlisten ? -1 :
		    (int)(i - s->conf->nlisten);
	}
	for (i = 0; i < n; i++)
		if (bind_one(s, &s->ls[i], s->ls[i].tls_index < 0 ?
		    s->conf->listen[i] :
		    s->conf->tls[s->ls[i].tls_index].address) == -1)
			return -1;
	/* Nothing is accepted before the loop runs. */
	buf_init(&err);
	if (server_tls_reload(s, s->conf, &err) == -1) {
		log_err("TLS: %s", err.p ? err.p : "cannot set up");
		buf_fini(&err);
		return -1;
	}
	buf_fini(&err);
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

void
server_free(struct server *s)
{
	size_t i;

	for (i = 0; i < s->nls; i++)
		SSL_CTX_free(s->ls[i].ctx);
	free(s->ls);
	s->ls = NULL;
	s->nls = 0;
}
