/* upcurl.h - libcurl makes whmgate's connections to WHM, and only that:
 * TCP, TLS 1.2+, verification (CA store, host name, pin), the connect
 * timeout and curl's own words for what failed, through
 * CURLOPT_CONNECT_ONLY on a multi handle driven by the libuv loop (a
 * uv_poll_t per socket and one uv_timer_t, as curl's multi-uv.c). Once a
 * connection is made it is handed over: upcurl calls made(), and from then
 * on readiness of its socket goes to io(); the owner sends and receives
 * with curl_easy_send/recv on conn->easy.
 *
 * Ownership: a struct upcurl_conn (embedded in its owner) holds its easy
 * handle from upcurl_open to upcurl_drop; the handle stays in the multi
 * all that time (curl closes a CONNECT_ONLY connection when it leaves).
 * The poll handle of a socket lives as long as the socket. The callbacks
 * run from the loop, never from inside curl, so they may drop connections
 * and open others. */
#ifndef WHMGATE_UPCURL_H
#define WHMGATE_UPCURL_H

#include <curl/curl.h>
#include <uv.h>

struct conf;
struct upcurl_sock;

struct upcurl_conn {
	CURL *easy;                /* NULL once dropped */
	struct upcurl_sock *s;     /* its socket, once made (NULL if closed) */
	void *owner;               /* handed back in made() and io() */
	char err[CURL_ERROR_SIZE]; /* curl's words for a failure */
};

/* A connection was made (ok 1) or not (ok 0: kind is connect/tls/reset,
 * why curl's words). */
typedef void (*upcurl_made_cb)(void *owner, int ok, const char *kind,
    const char *why);
/* The socket of a made connection is ready (UV_READABLE/UV_WRITABLE), or
 * failed (status < 0). */
typedef void (*upcurl_io_cb)(void *owner, int status, int events);

struct upcurl {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;          /* curl's */
	int depth;                 /* > 0 while inside a curl call */
	int openssl;               /* curl's TLS is OpenSSL's (see on_ssl_ctx) */
	struct upcurl_sock **socks; /* by fd */
	int nsocks;
	upcurl_made_cb made;
	upcurl_io_cb io;
	void (*closed)(void *arg); /* after upcurl_fini's last close */
	void *closed_arg;
};

/* Sets up c on loop. Returns 0, or -1 (nothing to undo). */
int upcurl_init(struct upcurl *c, uv_loop_t *loop, upcurl_made_cb made,
    upcurl_io_cb io);
/* After every connection was dropped: closes everything, then calls
 * closed(arg) from the loop. */
void upcurl_fini(struct upcurl *c, void (*closed)(void *arg), void *arg);
/* Starts making a connection under conf f's upstream settings. Returns 0
 * (made() follows from the loop), or -1 (nothing started). */
int upcurl_open(struct upcurl *c, struct upcurl_conn *k, const struct conf *f,
    void *owner);
/* Closes the connection (made or being made); no callback follows. */
void upcurl_drop(struct upcurl *c, struct upcurl_conn *k);
/* What a made connection's socket is watched for (0: nothing). */
void upcurl_arm(struct upcurl_conn *k, int events);

#endif
