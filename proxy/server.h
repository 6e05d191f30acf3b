/* server.h - the process-wide state one event loop works with: the current
 * conf, the audit trail, the upstream pool, listeners and counters. */
#ifndef WHMGATE_SERVER_H
#define WHMGATE_SERVER_H

#include <stddef.h>
#include <uv.h>

struct conf;
struct audit;
struct upstream;
struct conn;
struct buf;

struct listener {
	uv_tcp_t tcp;
	struct server *srv;
	int paused;          /* a connection waits: we are at the cap */
	int tls_index;       /* index in conf->tls, or -1 for plain HTTP */
	struct ssl_ctx_st *ctx;  /* SSL_CTX for new connections (TLS only) */
};

struct server {
	uv_loop_t *loop;
	struct conf *conf;   /* current; requests hold their own reference */
	struct audit *audit;
	struct upstream *up;
	struct listener *ls;
	size_t nls;
	struct conn *conns;  /* all open connections */
	size_t nconns;
	int draining;        /* SIGTERM: no new requests */
	unsigned long long inflight; /* requests being served */
};

/* Binds every listen address of s->conf. Returns 0, or -1 after logging. */
int server_listen(struct server *s);
/* "host:port" or "[v6]:port" to a socket address; 0 or -1. */
struct sockaddr_storage;
int server_parse_addr(const char *hostport, struct sockaddr_storage *ss);
/* Builds the TLS contexts of conf c (certificates are re-read); on success
 * the listeners use them for new connections. Returns 0, or -1 with err. */
int server_tls_reload(struct server *s, const struct conf *c, struct buf *err);
/* Stops accepting (shutdown). */
void server_stop_listening(struct server *s);
/* After the loop ended: frees the listeners' memory and TLS contexts. */
void server_free(struct server *s);
/* A connection closed: accept again if we were at the cap. */
void server_conn_closed(struct server *s);

#endif
