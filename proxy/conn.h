/* conn.h - the transport of one client connection: socket, TLS, the read
 * buffer and the HTTP parser it feeds, gathered and queued writes, timers,
 * the lingering close. What a request means is req.c's business; conn.c
 * hands it parser events and takes its answer bytes.
 *
 * The request layer talks to a connection only through the conn_* calls
 * below, and conn_request_done() only marks: the connection reaps the
 * finished request from its own loop (conn_feed) or the check phase, so no
 * request step ever runs inside another one. */
#ifndef WHMGATE_CONN_H
#define WHMGATE_CONN_H

#include <stddef.h>
#include <uv.h>

struct conf;
struct conn;
struct ssl_ctx_st;

/* Who is at the other end: a request copies it at its start, so its
 * records keep it after the connection is gone. */
struct conn_peer {
	char ip[46];               /* INET6_ADDRSTRLEN */
	int port, family;          /* AF_INET for v4-mapped peers */
	unsigned char addr[16];
	int tls;                   /* came in on a TLS listener */
	int cert_presented;        /* the client sent a certificate */
	int has_cert;              /* ... and it verified */
	unsigned char fp[32];      /* its SHA-256 fingerprint */
};

/* A worker's connections. The server embeds it and calls only the
 * conn_set_* functions; only conn.c touches the fields. */
struct conn_set {
	uv_loop_t *loop;
	void *owner;               /* handed to req_new (the server) */
	const struct conf *conf;   /* transport limits; the owner keeps it alive */
	struct conn *head;         /* every open connection */
	size_t n;
	struct conn *ready;        /* visited in the check phase */
	uv_check_t check;
	uv_idle_t idle;            /* keeps the poll short while some are ready */
	int draining;
	void (*on_closed)(void *owner);  /* after a connection is freed */
};

/* Sets up cs on loop; on_closed runs after each connection is freed.
 * Returns 0, or -1 after logging. */
int conn_set_init(struct conn_set *cs, uv_loop_t *loop, void *owner,
    const struct conf *c, void (*on_closed)(void *owner));
/* The conf for transport limits from now on (the caller keeps it alive). */
void conn_set_conf(struct conn_set *cs, const struct conf *c);
/* Shutdown began: every connection closes after its current answer. */
void conn_set_drain(struct conn_set *cs);
/* Cuts every connection (running calls get their response records). */
void conn_set_close_all(struct conn_set *cs, const char *why);
/* Closes the set's own handle; call once, after conn_set_close_all. */
void conn_set_fini(struct conn_set *cs);
/* Open connections in this set. */
size_t conn_set_count(const struct conn_set *cs);
/* Open connections over every worker. Safe from any thread. */
unsigned long long conn_total(void);

/* Accepts one connection from listener ls; ctx is the listener's SSL_CTX
 * or NULL for plain HTTP. Returns 0 or -1 (the connection is closed). */
int conn_accept(struct conn_set *cs, uv_stream_t *ls, struct ssl_ctx_st *ctx);

/* For the request layer. Each returns -1 when the client is gone or the
 * write failed; the connection then closes on its own (in its next step),
 * and the caller only ends its request. */

/* Writes now, after what was gathered, so bytes keep their order. */
int conn_send(struct conn *c, const char *a, size_t an, const char *b,
    size_t bn, const char *d, size_t dn);
/* Gathers bytes of an answer; they go out in one write at the end of this
 * loop pass, or once 64 KiB are waiting. */
int conn_gather(struct conn *c, const char *a, size_t an, const char *b,
    size_t bn, const char *d, size_t dn);
/* Writes what was gathered now. */
int conn_flush(struct conn *c);
/* Bytes of answers not yet taken by the socket. When they fall below the
 * low-water mark, req_drained() is called. */
size_t conn_backlog(const struct conn *c);
/* The connection closes after the current answer. */
void conn_close_after(struct conn *c);
int conn_closes_after(const struct conn *c);

enum conn_end {
	CONN_KEEP,        /* answer complete: keep-alive or close as decided */
	CONN_CUT          /* the answer cannot be completed: cut at once */
};
/* The current request has ended (its answer is fully handed over). The
 * connection calls req_end() once the answer is on the wire, or
 * req_abort() if it closes first; never from inside this call. */
void conn_request_done(struct conn *c, enum conn_end how);

#endif
