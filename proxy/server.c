/* server.c - workers: listeners, the connection cap, reload and drain.
 *
 * At its share of max_connections a listener stops accepting: libuv stops
 * polling a listening socket whose connection callback did not call
 * uv_accept, and the kernel's backlog holds the rest. When a connection
 * closes, the paused listeners accept again.
 *
 * Lifecycle of a worker: server_start -> (loop runs) -> drain requested ->
 * finish: every handle closed, the loop ends -> server_join -> (audit
 * closed by main) -> server_free. */
#define _GNU_SOURCE
#include "server.h"
#include "audit.h"
#include "conf.h"
#include "log.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

unsigned long long
server_connections(void)
{
	return conn_total();
}

static SSL_CTX *
listener_ctx(const struct listener *l)
{
	return l->tls_index >= 0 ? l->ctx : NULL;
}

static void
on_connection(uv_stream_t *ls, int status)
{
	struct listener *l = ls->data;
	struct server *s = l->srv;

	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	if (conn_set_count(&s->conns) >= s->max_conns) {
		l->paused = 1;
		return;
	}
	conn_accept(&s->conns, ls, listener_ctx(l));
}

/* A connection was freed: accept again if we were at the cap. */
static void
on_conn_closed(void *owner)
{
	struct server *s = owner;
	size_t i;

	for (i = 0; i < s->nls; i++) {
		if (!s->ls[i].paused || s->draining)
			continue;
		if (conn_set_count(&s->conns) >= s->max_conns)
			return;
		s->ls[i].paused = 0;
		/* The pending connection is accepted now; libuv then
		 * resumes polling the listening socket. */
		conn_accept(&s->conns, (uv_stream_t *)&s->ls[i].tcp,
		    listener_ctx(&s->ls[i]));
	}
}

/* Binds one listener; with several workers each binds its own socket with
 * SO_REUSEPORT and the kernel spreads connections over them (libuv 1.44
 * has no flag for it: set it on the fd before binding). */
static int
bind_one(struct server *s, struct listener *l, const char *addr, int reuseport)
{
	struct sockaddr_storage ss;
	const char *why;
	uv_os_fd_t fd;
	int rc, on = 1;

	if (conf_hostport(addr, &ss, &why) != 0) {
		log_err("listen %s: %s", addr, why);
		return -1;
	}
	if ((rc = uv_tcp_init_ex(s->loop, &l->tcp, ss.ss_family)) != 0) {
		log_err("listen %s: %s", addr, uv_strerror(rc));
		return -1;
	}
	l->tcp.data = l;
	s->nls++;
	if (reuseport && (uv_fileno((uv_handle_t *)&l->tcp, &fd) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)) {
		log_err("listen %s: SO_REUSEPORT failed", addr);
		return -1;
	}
	if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) != 0 ||
	    (rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection)) != 0) {
		log_err("listen %s: %s", addr, uv_strerror(rc));
		return -1;
	}
	if (s->index == 0)
		log_info("listening on %s://%s", l->tls_index >= 0 ? "https" :
		    "http", addr);
	return 0;
}

SSL_CTX **
server_tls_load(const struct conf *c, struct buf *err, int *failed)
{
	SSL_CTX **ctx;
	size_t i;

	*failed = 0;
	if (c->ntls == 0)
		return NULL;
	if ((ctx = calloc(c->ntls, sizeof(*ctx))) == NULL) {
		*failed = 1;
		return NULL;
	}
	for (i = 0; i < c->ntls; i++)
		if ((ctx[i] = tls_ctx_new(&c->tls[i], err)) == NULL) {
			server_tls_free(ctx, i);
			*failed = 1;
			return NULL;
		}
	return ctx;
}

void
server_tls_free(SSL_CTX **ctx, size_t n)
{
	size_t i;

	if (ctx == NULL)
		return;
	for (i = 0; i < n; i++)
		SSL_CTX_free(ctx[i]);
	free(ctx);
}

/* Listeners switch to new contexts; connections keep theirs (SSL_new took
 * a reference), so old contexts go with their last connection. */
static void
use_ctx(struct server *s, SSL_CTX **ctx)
{
	size_t i;

	for (i = 0; ctx && i < s->nls; i++) {
		struct listener *l = &s->ls[i];
		if (l->tls_index < 0)
			continue;
		SSL_CTX_up_ref(ctx[l->tls_index]);
		SSL_CTX_free(l->ctx);
		l->ctx = ctx[l->tls_index];
	}
}

static void
finish(struct server *s)
{
	if (s->finished)
		return;
	s->finished = 1;
	conn_set_close_all(&s->conns, "shutdown deadline");
	conn_set_fini(&s->conns);
	uv_timer_stop(&s->drain_timer);
	uv_timer_stop(&s->drain_check);
	uv_close((uv_handle_t *)&s->drain_timer, NULL);
	uv_close((uv_handle_t *)&s->drain_check, NULL);
	uv_close((uv_handle_t *)&s->wake, NULL);
	upstream_free(s->up);
	s->up = NULL;
	audit_sink_stop(s->sink);
	if (s->on_finished)
		s->on_finished(s);
}

static void
on_drain_deadline(uv_timer_t *t)
{
	struct server *s = t->data;

	if (conn_set_count(&s->conns))
		log_warn("shutdown deadline: cutting %zu connections",
		    conn_set_count(&s->conns));
	finish(s);
}

/* Idle connections stay open while calls are in flight, so a request on
 * one is answered 503 shutting_down rather than met by a silent close;
 * when the last call is done, everything closes. */
static void
on_drain_check(uv_timer_t *t)
{
	struct server *s = t->data;

	if (s->inflight == 0)
		finish(s);
}

static void
start_drain(struct server *s)
{
	size_t i;

	if (s->draining)
		return;
	s->draining = 1;
	conn_set_drain(&s->conns);
	for (i = 0; i < s->nls; i++)
		if (!uv_is_closing((uv_handle_t *)&s->ls[i].tcp))
			uv_close((uv_handle_t *)&s->ls[i].tcp, NULL);
	uv_timer_start(&s->drain_timer, on_drain_deadline,
	    (uint64_t)s->conf->limits.shutdown_timeout_ms, 0);
	uv_timer_start(&s->drain_check, on_drain_check, 0, 50);
}

/* On the worker's loop: apply what the main thread posted. */
static void
on_wake(uv_async_t *h)
{
	struct server *s = h->data;
	struct conf *c;
	SSL_CTX **ctx;
	int drain;

	uv_mutex_lock(&s->mu);
	c = s->next_conf;
	ctx = s->next_ctx;
	drain = s->drain_requested;
	s->next_conf = NULL;
	s->next_ctx = NULL;
	uv_mutex_unlock(&s->mu);
	if (c) {
		/* In-flight requests keep their own reference to the old. */
		use_ctx(s, ctx);
		server_tls_free(ctx, c->ntls);
		upstream_set_conf(s->up, c);
		conn_set_conf(&s->conns, c);
		conf_unref(s->conf);
		s->conf = c;
	}
	if (drain && !s->finished)
		start_drain(s);
}

static void
worker_main(void *arg)
{
	struct server *s = arg;

	uv_run(s->loop, UV_RUN_DEFAULT);
}

int
server_start(struct server *s, int index, int nworkers, struct conf *c,
    struct audit *a, SSL_CTX **ctx)
{
	size_t i, n = c->nlisten + c->ntls;
	int rc;

	s->index = index;
	s->audit = a;
	s->conf = conf_ref(c);
	s->max_conns = ((size_t)c->limits.max_connections + (size_t)nworkers - 1) /
	    (size_t)nworkers;
	if (index == 0) {
		s->loop = uv_default_loop();
	} else {
		if (uv_loop_init(&s->own_loop) != 0)
			return -1;
		s->loop = &s->own_loop;
	}
	if ((rc = uv_mutex_init(&s->mu)) != 0 ||
	    (rc = uv_async_init(s->loop, &s->wake, on_wake)) != 0 ||
	    (rc = uv_timer_init(s->loop, &s->drain_timer)) != 0 ||
	    (rc = uv_timer_init(s->loop, &s->drain_check)) != 0) {
		log_err("worker %d: cannot set up: %s", index, uv_strerror(rc));
		return -1;
	}
	s->wake.data = s;
	s->drain_timer.data = s->drain_check.data = s;
	if (conn_set_init(&s->conns, s->loop, s, c, on_conn_closed) == -1)
		return -1;
	if ((s->sink = audit_sink_new(a, s->loop)) == NULL ||
	    (s->up = upstream_new(s->loop, c)) == NULL) {
		log_err("worker %d: cannot set up", index);
		return -1;
	}
	if ((s->ls = calloc(n ? n : 1, sizeof(*s->ls))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		s->ls[i].srv = s;
		s->ls[i].tls_index = i < c->nlisten ? -1 : (int)(i - c->nlisten);
		if (bind_one(s, &s->ls[i], s->ls[i].tls_index < 0 ? c->listen[i] :
		    c->tls[s->ls[i].tls_index].address, nworkers > 1) == -1)
			return -1;
	}
	use_ctx(s, ctx);
	if (index > 0 && uv_thread_create(&s->thread, worker_main, s) != 0) {
		log_err("worker %d: cannot start its thread", index);
		return -1;
	}
	return 0;
}

void
server_post_conf(struct server *s, struct conf *c, SSL_CTX **shared)
{
	SSL_CTX **ctx = NULL;
	size_t i;

	/* The worker gets its own array and references. */
	if (shared && (ctx = calloc(c->ntls, sizeof(*ctx))) != NULL)
		for (i = 0; i < c->ntls; i++) {
			SSL_CTX_up_ref(shared[i]);
			ctx[i] = shared[i];
		}
	uv_mutex_lock(&s->mu);
	if (s->next_conf) {          /* two reloads before the worker woke */
		server_tls_free(s->next_ctx, s->next_conf->ntls);
		conf_unref(s->next_conf);
	}
	s->next_conf = conf_ref(c);
	s->next_ctx = ctx;
	uv_mutex_unlock(&s->mu);
	uv_async_send(&s->wake);
}

void
server_post_drain(struct server *s)
{
	uv_mutex_lock(&s->mu);
	s->drain_requested = 1;
	uv_mutex_unlock(&s->mu);
	uv_async_send(&s->wake);
}

void
server_join(struct server *s)
{
	if (s->index > 0 && s->loop) {
		uv_thread_join(&s->thread);
		uv_loop_close(s->loop);
	}
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
	if (s->next_conf) {
		server_tls_free(s->next_ctx, s->next_conf->ntls);
		conf_unref(s->next_conf);
	}
	conf_unref(s->conf);
	s->conf = NULL;
	uv_mutex_destroy(&s->mu);
}
