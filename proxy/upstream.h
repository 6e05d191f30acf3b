/* upstream.h - calls to WHM. libcurl opens, times out, verifies (CA store,
 * host name, pin) and keeps the TLS connections (CURLOPT_CONNECT_ONLY,
 * driven by the libuv loop as in curl's docs/examples/multi-uv.c);
 * whmgate writes each call's HTTP/1.1 request itself with curl_easy_send
 * and reads WHM's answer with curl_easy_recv into llhttp. A pool of
 * connections per worker, bounded by upstream.max_connections, with calls
 * that wait for one queued in order. The answer is handed over piece by
 * piece; the consumer can hold WHM back and resume, so a slow client never
 * makes whmgate buffer a whole body. */
#ifndef WHMGATE_UPSTREAM_H
#define WHMGATE_UPSTREAM_H

#include <stddef.h>
#include <uv.h>

struct conf;
struct client;
struct upstream;
struct upstream_req;

/* The outcome of a call. */
struct upstream_result {
	int status;          /* WHM's HTTP status, 0 if none arrived */
	int err_status;      /* 0, or 502/504 for the client */
	const char *err_code;  /* upstream_unavailable / upstream_timeout */
	const char *error;   /* for the record: upstream_closed, connect, ... */
	const char *kind;    /* connect, tls, timeout, reset, protocol: metrics */
	const char *detail;  /* curl's or llhttp's words, for the log */
	int sent;            /* a byte of the call reached a connection */
	unsigned long long bytes;
	double ms;
};

struct upstream_ops {
	/* The response head arrived (final status, not 1xx). content_length
	 * is -1 when WHM sent none. */
	void (*on_head)(void *arg, int status, const char *content_type,
	    long long content_length);
	/* A piece of body, always taken. Return 1 to hold the next pieces
	 * until upstream_resume (back-pressure), else 0. */
	int (*on_data)(void *arg, const char *p, size_t n);
	/* The call ended; called once, unless cancelled first. */
	void (*on_done)(void *arg, const struct upstream_result *res);
};

/* What to send: whmgate builds it, upstream only transports it. */
struct upstream_call {
	const char *target;     /* "/json-api/<fn>", with "?<query>" for GET */
	const char *body;       /* POST form body, or NULL for GET */
	size_t body_len;
	const char *request_id;
};

struct upstream *upstream_new(uv_loop_t *loop, const struct conf *c);
/* Closes every connection and handle; all calls must be finished or
 * cancelled. */
void upstream_free(struct upstream *u);
/* A new conf: its pool size, and idle connections made under other
 * upstream settings (URL, CA, pin) are closed. */
void upstream_set_conf(struct upstream *u, const struct conf *c);

/* Starts a call for client cl under conf c (which must outlive the call).
 * Returns NULL on failure (no callback will run). The call's strings are
 * copied. Callbacks never run from inside this function. */
struct upstream_req *upstream_start(struct upstream *u, const struct conf *c,
    const struct client *cl, const struct upstream_call *call,
    const struct upstream_ops *ops, void *arg);
/* Continues a call held by on_data; pieces may be delivered from inside
 * this call. */
void upstream_resume(struct upstream_req *r);
/* Abandons a call: no callback runs after this returns. Safe from inside
 * the call's own callbacks. */
void upstream_cancel(struct upstream_req *r);

/* Connections to WHM open (connecting included) and idle, and calls
 * waiting for one, over every worker, for the status page. Safe from any
 * thread. */
void upstream_pool(size_t *open, size_t *idle, size_t *waiting);

#endif
