/* upstream.h - calls to WHM through libcurl's multi interface, driven by
 * the libuv loop (a uv_poll_t per socket and one uv_timer_t), as in curl's
 * docs/examples/multi-uv.c. Connections to WHM are kept in the multi handle
 * and reused. The response is handed over piece by piece; the consumer can
 * push back (pause) and resume, so a slow client never makes whmgate buffer
 * a whole body. */
#ifndef WHMGATE_UPSTREAM_H
#define WHMGATE_UPSTREAM_H

#include <stddef.h>
#include <uv.h>

struct conf;
struct client;
struct upstream;
struct upstream_req;

/* The outcome of a transfer. */
struct upstream_result {
	int status;          /* WHM's HTTP status, 0 if none arrived */
	int err_status;      /* 0, or 502/504 for the client */
	const char *err_code;  /* upstream_unavailable / upstream_timeout */
	const char *kind;    /* connect, tls, timeout, reset: for metrics */
	const char *detail;  /* curl's message */
	unsigned long long bytes;
	double ms;
};

struct upstream_ops {
	/* The response head arrived (final status, not 1xx). content_length
	 * is -1 when WHM sent none. */
	void (*on_head)(void *arg, int status, const char *content_type,
	    long long content_length);
	/* A piece of body. Return 0 when taken, 1 to pause (the piece is
	 * delivered again after upstream_resume). May be called from inside
	 * upstream_resume. */
	int (*on_data)(void *arg, const char *p, size_t n);
	/* The transfer ended; called once, unless cancelled first. */
	void (*on_done)(void *arg, const struct upstream_result *res);
};

/* What to send: whmgate builds it, upstream only transports it. */
struct upstream_call {
	const char *url;        /* full URL, query included for GET */
	const char *body;       /* POST form body, or NULL for GET */
	size_t body_len;
	const char *request_id;
};

struct upstream *upstream_new(uv_loop_t *loop, const struct conf *c);
/* Closes the timer and sockets; all requests must be finished or
 * cancelled. */
void upstream_free(struct upstream *u);
/* Applies the pool size of a new conf. */
void upstream_set_conf(struct upstream *u, const struct conf *c);

/* Starts a call for client cl under conf c (which must outlive the call).
 * Returns NULL on failure (no callback will run). The call and body
 * strings are copied. */
struct upstream_req *upstream_start(struct upstream *u, const struct conf *c,
    const struct client *cl, const struct upstream_call *call,
    const struct upstream_ops *ops, void *arg);
/* Continues a paused transfer. */
void upstream_resume(struct upstream_req *r);
/* Abandons a transfer: no callback runs after this returns. */
void upstream_cancel(struct upstream_req *r);

#endif
