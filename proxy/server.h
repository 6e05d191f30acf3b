/* server.h - one worker: an event loop with its own listeners (SO_REUSEPORT
 * when there are several workers), connections and upstream pool, sharing
 * the audit trail. Worker 0 runs on the main thread's loop; the others on
 * threads of their own. The main thread talks to a worker only through
 * server_post_conf and server_post_drain. */
#ifndef WHMGATE_SERVER_H
#define WHMGATE_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "conn.h"

struct conf;
struct audit;
struct audit_sink;
struct upstream;
struct buf;
struct ssl_ctx_st;
struct sockaddr_storage;

struct listener {
	uv_tcp_t tcp;
	struct server *srv;
	int paused;          /* a connection waits: we are at the cap */
	int tls_index;       /* index in conf->tls, or -1 for plain HTTP */
	struct ssl_ctx_st *ctx;  /* SSL_CTX for new connections (TLS only) */
};

struct server {
	int index;
	uv_loop_t *loop;
	uv_loop_t own_loop;  /* workers other than 0 */
	uv_thread_t thread;
	struct conf *conf;   /* current; requests hold their own reference */
	struct audit *audit;
	struct audit_sink *sink;
	struct upstream *up;
	struct listener *ls;
	size_t nls;
	struct conn_set conns;  /* all open connections (conn.c's fields) */
	size_t max_conns;    /* this worker's share of the cap */
	int draining;        /* SIGTERM: no new requests */
	int finished;
	unsigned long long inflight; /* requests being served */
	uv_timer_t drain_timer, drain_check;
	/* Messages from the main thread, under mu, delivered by wake. */
	uv_async_t wake;
	uv_mutex_t mu;
	struct conf *next_conf;
	struct ssl_ctx_st **next_ctx;
	int drain_requested;
	/* Called on the worker's loop when it has closed everything. */
	void (*on_finished)(struct server *s);
};

/* Sets up worker index of nworkers under conf c, binds its listeners and,
 * for index > 0, starts its thread. ctx holds one SSL_CTX per conf->tls
 * (the worker takes its own references). Returns 0, or -1 after logging. */
int server_start(struct server *s, int index, int nworkers, struct conf *c,
    struct audit *a, struct ssl_ctx_st **ctx);
/* From the main thread: use conf c (and TLS contexts ctx, of which the
 * worker takes its own references) for new requests. */
void server_post_conf(struct server *s, struct conf *c, struct ssl_ctx_st **ctx);
/* From the main thread: stop accepting, finish in-flight work, end. */
void server_post_drain(struct server *s);
/* After the main loop ended: waits for a worker thread to end. */
void server_join(struct server *s);
/* After the audit is closed: frees what the worker still holds. */
void server_free(struct server *s);

/* One SSL_CTX per listen_tls entry of c, or NULL (no TLS, or an error in
 * err). The caller frees them with server_tls_free. */
struct ssl_ctx_st **server_tls_load(const struct conf *c, struct buf *err,
    int *failed);
void server_tls_free(struct ssl_ctx_st **ctx, size_t n);

/* Open connections over all workers. Safe from any thread. */
unsigned long long server_connections(void);

#endif
