/* conn.c - the transport of a client connection.
 *
 * Ownership and lifecycle:
 * - A connection set (struct conn_set, embedded in the server) owns its
 *   connections (a list); a connection owns at most one request, c->req,
 *   and the parser that feeds it. Pipelined bytes wait in c->in while a
 *   request runs; past IN_CAP of them, reading stops until it is done.
 * - One teardown: conn_close(). It ends the request with req_abort(),
 *   closes the three handles, and frees the connection in the last close
 *   callback (on_closed).
 * - A request ends in conn_request_done(), which only marks it. The
 *   connection reaps it in conn_feed(), a loop: a finished request whose
 *   answer is on the wire gets req_end() and the loop goes on with the next
 *   pipelined one. Nothing a request does calls back into conn_feed, so
 *   completion never recurses, however many requests come in one read.
 *   Marks made outside conn_feed (WHM answered, a record became durable)
 *   put the connection on the set's ready list, visited in the check phase
 *   of the same loop pass.
 * - Answer bytes gathered in a loop pass wait in c->cork (the connection is
 *   on the ready list) and go out in one write; an idle connection holds
 *   no cork buffer and no read buffer.
 * - A write that the socket does not take at once is copied into a queued
 *   uv_write (out_pending counts them). While any is queued the write
 *   timer runs: a client that takes nothing for idle_timeout_ms is cut,
 *   whatever the buffers hold.
 * - Write failures mark the connection broken; it closes in its next step,
 *   never inside the caller's. */
#include "conn.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "req.h"
#include "tls.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 65536
#define OUT_LOW (64 * 1024)     /* below this backlog, WHM may send again */
#define CORK_MAX (64 * 1024)    /* write gathered pieces at this size */
#define IN_CAP (2 * READ_CHUNK) /* pipelined bytes held while a request runs */
#define LINGER_MS 2000
#define LINGER_BYTES (1 << 20)

enum timer_kind { T_NONE, T_HEADER, T_BODY, T_IDLE, T_LINGER };

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;          /* reading: header, body, idle, linger */
	uv_timer_t wtimer;         /* writing: no progress for idle_timeout_ms */
	struct conn_set *set;
	struct conn *prev, *next;  /* in set->head */
	struct conn *ready_next;   /* in set->ready */
	int listed, on_ready, handles;
	int closing, lingering, close_after, broken, feeding, reading;
	int done;                  /* 0, or 1 + enum conn_end */
	enum timer_kind timer_kind;
	uint64_t body_deadline;    /* loop time by which the body must be in */
	uv_shutdown_t shut;
	struct conn_peer peer;
	struct http_parser hp;
	struct buf in;
	size_t in_off, linger_bytes;
	struct req *req;
	size_t out_pending;        /* bytes in queued uv_writes */
	struct buf cork;
	struct tls_conn *tls;      /* NULL on plain HTTP listeners */
};

static atomic_ullong total_conns;

static void conn_feed(struct conn *c);
static void conn_close(struct conn *c, const char *log_why, const char *code);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void on_timer(uv_timer_t *t);
static void on_check(uv_check_t *h);
static void on_idle(uv_idle_t *h);

unsigned long long
conn_total(void)
{
	return atomic_load(&total_conns);
}

/* ---- the ready list: visited in the check phase ---- */

static void
ready_add(struct conn *c)
{
	struct conn_set *cs = c->set;

	if (c->on_ready || c->closing)
		return;
	c->on_ready = 1;
	c->ready_next = cs->ready;
	cs->ready = c;
	/* The check phase comes after the poll, and the poll would block
	 * (a check handle does not shorten it) when this runs in the timers
	 * phase, as when curl's timer ends a call: an active idle handle
	 * makes that poll return at once (node's setImmediate does the
	 * same). on_check stops both. Starting an active handle is a no-op. */
	uv_check_start(&cs->check, on_check);
	uv_idle_start(&cs->idle, on_idle);
}

static void
ready_remove(struct conn *c)
{
	struct conn **pp;

	if (!c->on_ready)
		return;
	for (pp = &c->set->ready; *pp; pp = &(*pp)->ready_next)
		if (*pp == c) {
			*pp = c->ready_next;
			break;
		}
	c->on_ready = 0;
}

/* ---- reading ---- */

static void
read_on(struct conn *c)
{
	int rc;

	if (c->reading || c->closing)
		return;
	if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) != 0) {
		log_warn("connection %s:%d: uv_read_start: %s", c->peer.ip,
		    c->peer.port, uv_strerror(rc));
		c->broken = 1;
		ready_add(c);
		return;
	}
	c->reading = 1;
}

static void
read_off(struct conn *c)
{
	if (!c->reading)
		return;
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = 0;
}

/* ---- writing ---- */

struct wreq {
	uv_write_t w;
	struct conn *c;
	size_t len;
	char data[];
};

static void
on_wtimer(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing)
		return;
	conn_close(c, "client stopped reading", "client_stalled");
}

static void
wtimer_arm(struct conn *c)
{
	uint64_t ms = (uint64_t)c->set->conf->limits.idle_timeout_ms;

	/* Restarting is the point: the stall clock counts from the last
	 * progress. */
	uv_timer_start(&c->wtimer, on_wtimer, ms, 0);
}

/* Tells a running request that its backlog is low again (WHM may send
 * more). Not from inside conn_feed: the request may relay at once. */
static void
drained(struct conn *c)
{
	if (c->req && !c->done && c->out_pending < OUT_LOW)
		req_drained(c->req);
}

static void
on_written(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = wr->c;

	c->out_pending -= wr->len;
	free(wr);
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c, uv_strerror(status), "client_closed");
		return;
	}
	if (c->out_pending > 0)
		wtimer_arm(c);
	else
		uv_timer_stop(&c->wtimer);
	drained(c);
	/* A callback of libuv's, not a request step: the request that
	 * waited for its answer to be written is reaped here. */
	if (!c->closing && c->done && c->out_pending == 0)
		conn_feed(c);
}

/* Sends the concatenation of up to three pieces: straight to the socket
 * when nothing is queued (no copy); what the socket does not take now is
 * copied and queued. */
static int
raw_write(struct conn *c, const char *a, size_t an, const char *b, size_t bn,
    const char *d, size_t dn)
{
	uv_buf_t in[3] = { uv_buf_init((char *)a, (unsigned int)an),
		uv_buf_init((char *)b, (unsigned int)bn),
		uv_buf_init((char *)d, (unsigned int)dn) };
	struct wreq *wr;
	uv_buf_t ub;
	size_t n = an + bn + dn, skip = 0, i, o, take;
	int sent, rc;

	if (c->closing || c->broken)
		return -1;
	/* uv_try_write refuses (UV_EAGAIN) while writes are queued, so
	 * the order of bytes on the wire is kept. */
	if (c->out_pending == 0 && n > 0) {
		sent = uv_try_write((uv_stream_t *)&c->tcp, in, 3);
		if (sent > 0)
			skip = (size_t)sent;
		else if (sent < 0 && sent != UV_EAGAIN)
			goto broken;
		if (skip == n)
			return 0;
	}
	if (n == 0)
		return 0;
	n -= skip;
	if ((wr = malloc(sizeof(*wr) + n)) == NULL)
		goto broken;
	wr->c = c;
	wr->len = n;
	for (i = 0, o = 0; i < 3; i++) {
		if (skip >= in[i].len) {
			skip -= in[i].len;
			continue;
		}
		take = in[i].len - skip;
		memcpy(wr->data + o, in[i].base + skip, take);
		o += take;
		skip = 0;
	}
	ub = uv_buf_init(wr->data, (unsigned int)n);
	if ((rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &ub, 1,
	    on_written)) != 0) {
		free(wr);
		goto broken;
	}
	if (c->out_pending == 0)
		wtimer_arm(c);
	c->out_pending += n;
	return 0;
broken:
	c->broken = 1;
	ready_add(c);
	return -1;
}

/* Appends up to three pieces to the cork, encrypted on TLS. */
static int
cork_append(struct conn *c, const char *a, size_t an, const char *b,
    size_t bn, const char *d, size_t dn)
{
	int rc = 0;

	if (c->closing || c->broken)
		return -1;
	if (c->tls) {
		rc |= tls_write(c->tls, a, an, &c->cork);
		rc |= tls_write(c->tls, b, bn, &c->cork);
		rc |= tls_write(c->tls, d, dn, &c->cork);
	} else {
		rc |= buf_add(&c->cork, a, an);
		rc |= buf_add(&c->cork, b, bn);
		rc |= buf_add(&c->cork, d, dn);
	}
	if (rc) {
		c->broken = 1;
		ready_add(c);
		return -1;
	}
	return 0;
}

int
conn_flush(struct conn *c)
{
	int rc = 0;

	if (c->cork.len > 0)
		rc = raw_write(c, c->cork.p, c->cork.len, NULL, 0, NULL, 0);
	c->cork.len = 0;
	return rc;
}

int
conn_gather(struct conn *c, const char *a, size_t an, const char *b,
    size_t bn, const char *d, size_t dn)
{
	if (cork_append(c, a, an, b, bn, d, dn) == -1)
		return -1;
	if (c->cork.len >= CORK_MAX)
		return conn_flush(c);
	ready_add(c);
	return 0;
}

int
conn_send(struct conn *c, const char *a, size_t an, const char *b, size_t bn,
    const char *d, size_t dn)
{
	if (cork_append(c, a, an, b, bn, d, dn) == -1)
		return -1;
	return conn_flush(c);
}

size_t
conn_backlog(const struct conn *c)
{
	return c->out_pending + c->cork.len;
}

void
conn_close_after(struct conn *c)
{
	c->close_after = 1;
}

int
conn_closes_after(const struct conn *c)
{
	return c->close_after || c->set->draining;
}

void
conn_request_done(struct conn *c, enum conn_end how)
{
	c->done = 1 + (int)how;
	if (!c->feeding)
		ready_add(c);
}

/* ---- timers ---- */

static void
timer_set(struct conn *c, enum timer_kind k, long ms)
{
	c->timer_kind = k;
	uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* While a body is read: each pause is bounded by idle_timeout_ms and the
 * whole body by body_timeout_ms, so a body trickled a byte at a time is
 * not held for ever. */
static void
body_timer(struct conn *c)
{
	uint64_t now = uv_now(c->set->loop), left;
	long idle = c->set->conf->limits.idle_timeout_ms;

	left = c->body_deadline > now ? c->body_deadline - now : 0;
	timer_set(c, T_BODY, (uint64_t)idle < left ? idle : (long)left);
}

static void
timer_off(struct conn *c)
{
	uv_timer_stop(&c->timer);
	c->timer_kind = T_NONE;
}

static void
on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->closing)
		return;
	switch (c->timer_kind) {
	case T_HEADER:
	case T_BODY:
	case T_IDLE:
		if (c->req && !c->done && req_reading(c->req)) {
			req_timeout(c->req);
			/* Not inside conn_feed: the mark put c on the ready
			 * list, where the answer's end is reaped. */
			return;
		}
		conn_close(c, "idle", "client_closed");
		return;
	case T_LINGER:
	case T_NONE:
		conn_close(c, "lingering close done", "client_closed");
		return;
	}
}

/* ---- the request loop ---- */

/* The answer has been delivered: half-close and drain what the client
 * still sends, so the kernel does not answer it with a reset that would
 * destroy our response in flight. */
static void
linger_start(struct conn *c)
{
	struct buf out;
	int rc;

	c->lingering = 1;
	c->in.len = c->in_off = 0;
	if (c->tls) {
		buf_init(&out);
		tls_close_notify(c->tls, &out);
		if (out.len)
			raw_write(c, out.p, out.len, NULL, 0, NULL, 0);
		buf_fini(&out);
	}
	if ((rc = uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, NULL)) != 0) {
		log_debug("connection %s:%d: uv_shutdown: %s", c->peer.ip,
		    c->peer.port, uv_strerror(rc));
		c->broken = 1;
		return;
	}
	timer_set(c, T_LINGER, LINGER_MS);
	read_on(c);
}

/* The request's answer is on the wire: its end, then keep-alive or the
 * lingering close. */
static void
reap(struct conn *c)
{
	struct req *r = c->req;

	c->req = NULL;
	c->done = 0;
	req_end(r);
	if (c->cork.len == 0)
		buf_fini(&c->cork);     /* an idle connection holds no buffer */
	if (conn_closes_after(c)) {
		linger_start(c);
		return;
	}
	if (c->in.len > c->in_off)
		timer_set(c, T_HEADER, c->set->conf->limits.header_timeout_ms);
	else
		timer_set(c, T_IDLE, c->set->conf->limits.idle_timeout_ms);
}

/* Drops consumed bytes from the front of c->in; frees a large buffer that
 * is empty, so idle connections stay small. */
static void
in_compact(struct conn *c)
{
	if (c->in_off == c->in.len) {
		c->in.len = c->in_off = 0;
		if (c->in.cap > 4096)
			buf_fini(&c->in);
	} else if (c->in_off > 0) {
		memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
		c->in.len -= c->in_off;
		c->in_off = 0;
	}
}

static struct req *
start_request(struct conn *c)
{
	struct req *r;

	if (c->tls) {
		c->peer.cert_presented = c->tls->cert_presented;
		c->peer.has_cert = c->tls->has_cert;
		memcpy(c->peer.fp, c->tls->fp, sizeof(c->peer.fp));
	}
	if ((r = req_new(c, c->set->owner, &c->peer, &c->hp)) == NULL)
		return NULL;
	if (c->timer_kind != T_HEADER)
		timer_set(c, T_HEADER, c->set->conf->limits.header_timeout_ms);
	return r;
}

/* Feeds pipelined bytes to requests, one at a time, and reaps each that
 * finished: a loop, so a thousand requests in one read are a thousand
 * turns, not a thousand nested calls. */
static void
conn_feed(struct conn *c)
{
	enum http_event ev;
	size_t used;

	if (c->feeding)
		return;
	c->feeding = 1;
	while (!c->closing) {
		if (c->broken) {
			conn_close(c, "write failed", "client_closed");
			break;
		}
		if (c->req && c->done) {
			if (c->done == 1 + CONN_CUT) {
				conn_flush(c);  /* what there is, as far as it goes */
				conn_close(c, "answer cut", "client_closed");
				break;
			}
			if (conn_flush(c) == -1)
				continue;       /* broken: closes above */
			if (c->out_pending > 0)
				break;          /* on_written comes back */
			reap(c);
			continue;
		}
		if (c->lingering)
			break;
		if (c->req == NULL) {
			if (c->in.len == c->in_off)
				break;
			if ((c->req = start_request(c)) == NULL) {
				conn_close(c, "out of memory", "client_closed");
				break;
			}
		}
		if (!req_reading(c->req))
			break;
		ev = http_feed(&c->hp, c->in.p + c->in_off, c->in.len - c->in_off,
		    &used);
		c->in_off += used;
		switch (ev) {
		case HEV_MORE:
			goto out;
		case HEV_ERROR:
			c->close_after = 1;
			req_bad_framing(c->req, c->hp.status, c->hp.reason);
			break;
		case HEV_HEAD:
			c->body_deadline = uv_now(c->set->loop) +
			    (uint64_t)c->set->conf->limits.body_timeout_ms;
			body_timer(c);
			req_head(c->req);
			break;
		case HEV_DONE:
			/* Reading goes on, so a client that leaves is
			 * noticed (499); bytes it pipelines wait in c->in. */
			timer_off(c);
			req_message(c->req);
			break;
		}
	}
out:
	c->feeding = 0;
	if (c->closing)
		return;
	if (c->req == NULL)
		in_compact(c);
	/* While a request runs, hold at most IN_CAP pipelined bytes. */
	if (c->lingering || c->req == NULL || req_reading(c->req) ||
	    c->in.len - c->in_off <= IN_CAP)
		read_on(c);
	else
		read_off(c);
}

/* The check phase: write what was gathered, reap and close what was
 * marked. */
static void
on_check(uv_check_t *h)
{
	struct conn_set *cs = h->data;
	struct conn *c;

	while ((c = cs->ready) != NULL) {
		cs->ready = c->ready_next;
		c->on_ready = 0;
		if (c->closing)
			continue;
		if (!c->done && !c->broken) {
			conn_flush(c);
			if (!c->broken) {
				/* The flush may have left nothing queued:
				 * no on_written will come to resume. */
				drained(c);
				continue;
			}
		}
		conn_feed(c);
	}
	uv_check_stop(h);
	uv_idle_stop(&cs->idle);
}

/* Only keeps the poll from blocking while connections are ready. */
static void
on_idle(uv_idle_t *h)
{
	(void)h;
}

/* ---- reading from the socket ---- */

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	/* Every read lands in one buffer per thread; on_read keeps only
	 * what a connection needs, so an idle connection holds no buffer. */
	static _Thread_local char scratch[READ_CHUNK];

	(void)h;
	(void)hint;
	*b = uv_buf_init(scratch, sizeof(scratch));
}

/* Decrypts n bytes of TLS into c->in. 0 ok, 1 peer closed, -1 error. */
static int
tls_in(struct conn *c, const char *p, size_t n)
{
	struct buf out;
	int rc;

	buf_init(&out);
	in_compact(c);
	rc = tls_read(c->tls, p, n, &c->in, &out);
	/* Handshake messages, alerts and tickets go out even on error,
	 * after the records already gathered (they were encrypted first). */
	if (out.len && conn_flush(c) == 0)
		raw_write(c, out.p, out.len, NULL, 0, NULL, 0);
	buf_fini(&out);
	return rc;
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;
	int rc;

	if (c->closing)
		return;
	if (n > 0 && c->lingering) {
		c->linger_bytes += (size_t)n;
		if (c->linger_bytes > LINGER_BYTES)
			conn_close(c, "lingering close", "client_closed");
		return;
	}
	if (n > 0 && c->tls) {
		if ((rc = tls_in(c, b->base, (size_t)n)) != 0)
			n = rc == 1 ? UV_EOF : UV_EPROTO;
		else if (c->in.len == c->in_off)
			return;          /* handshake only, no data yet */
	} else if (n > 0) {
		in_compact(c);
		if (buf_add(&c->in, b->base, (size_t)n) == -1)
			n = UV_ENOMEM;
	}
	if (n < 0) {
		if (!c->lingering && c->req && !c->done && req_reading(c->req))
			req_peer_closed(c->req);
		conn_close(c, n == UV_EOF ? "closed by client" :
		    uv_strerror((int)n), "client_closed");
		return;
	}
	if (n == 0)
		return;
	if (c->req == NULL && c->timer_kind == T_IDLE)
		timer_set(c, T_HEADER, c->set->conf->limits.header_timeout_ms);
	else if (c->req && c->timer_kind == T_BODY)
		body_timer(c);
	conn_feed(c);
}

/* ---- accept and close ---- */

static void
on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct conn_set *cs = c->set;
	int listed = c->listed;

	if (--c->handles > 0)
		return;
	http_parser_fini(&c->hp);
	buf_fini(&c->in);
	buf_fini(&c->cork);
	if (c->tls) {
		tls_conn_fini(c->tls);
		free(c->tls);
	}
	free(c);
	if (listed && cs->on_closed)
		cs->on_closed(cs->owner);
}

static void
close_handles(struct conn *c)
{
	uv_timer_stop(&c->timer);
	uv_timer_stop(&c->wtimer);
	c->handles = 3;
	uv_close((uv_handle_t *)&c->timer, on_closed);
	uv_close((uv_handle_t *)&c->wtimer, on_closed);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* The one teardown. code is what the request's record says when the
 * connection closes under it. */
static void
conn_close(struct conn *c, const char *log_why, const char *code)
{
	struct conn_set *cs = c->set;
	struct req *r = c->req;

	if (c->closing)
		return;
	c->closing = 1;
	ready_remove(c);
	log_debug("connection %s:%d closed: %s", c->peer.ip, c->peer.port,
	    log_why);
	if (c->prev)
		c->prev->next = c->next;
	else
		cs->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	cs->n--;
	atomic_fetch_sub(&total_conns, 1);
	c->req = NULL;
	if (r)
		req_abort(r, code);
	close_handles(c);
}

static void
peer_fill(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	c->peer.family = ss.ss_family;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		memcpy(c->peer.addr, &sin->sin_addr, 4);
		c->peer.port = ntohs(sin->sin_port);
		inet_ntop(AF_INET, &sin->sin_addr, c->peer.ip, sizeof(c->peer.ip));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		memcpy(c->peer.addr, &sin6->sin6_addr, 16);
		c->peer.port = ntohs(sin6->sin6_port);
		inet_ntop(AF_INET6, &sin6->sin6_addr, c->peer.ip,
		    sizeof(c->peer.ip));
		/* A v4-mapped peer is checked as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			c->peer.family = AF_INET;
			memcpy(c->peer.addr, c->peer.addr + 12, 4);
			inet_ntop(AF_INET, c->peer.addr, c->peer.ip,
			    sizeof(c->peer.ip));
		}
	}
}

int
conn_accept(struct conn_set *cs, uv_stream_t *ls, SSL_CTX *ctx)
{
	struct conn *c = calloc(1, sizeof(*c));
	int rc;

	if (c == NULL)
		return -1;
	c->set = cs;
	c->tcp.data = c->timer.data = c->wtimer.data = c;
	/* libuv's timer and AF_UNSPEC tcp inits cannot fail on a live loop;
	 * if they did, the loop would be broken, not this connection. Then
	 * every failure below has all three handles to close. */
	if ((rc = uv_timer_init(cs->loop, &c->timer)) != 0 ||
	    (rc = uv_timer_init(cs->loop, &c->wtimer)) != 0 ||
	    (rc = uv_tcp_init(cs->loop, &c->tcp)) != 0) {
		log_err("accept: cannot set up a connection: %s", uv_strerror(rc));
		abort();        /* a broken invariant: the loop is unusable */
	}
	if ((rc = uv_accept(ls, (uv_stream_t *)&c->tcp)) != 0) {
		log_warn("accept: %s", uv_strerror(rc));
		c->closing = 1;
		close_handles(c);
		return -1;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	peer_fill(c);
	c->peer.tls = ctx != NULL;
	http_parser_init(&c->hp, (size_t)cs->conf->limits.max_header_bytes,
	    (size_t)cs->conf->limits.max_body_bytes);
	buf_init(&c->in);
	buf_init(&c->cork);
	c->listed = 1;
	c->next = cs->head;
	if (cs->head)
		cs->head->prev = c;
	cs->head = c;
	cs->n++;
	atomic_fetch_add(&total_conns, 1);
	if (ctx && ((c->tls = calloc(1, sizeof(*c->tls))) == NULL ||
	    tls_conn_init(c->tls, ctx) == -1)) {
		log_err("TLS: cannot set up a connection");
		free(c->tls);
		c->tls = NULL;
		conn_close(c, "TLS set-up failed", "client_closed");
		return -1;
	}
	timer_set(c, T_HEADER, cs->conf->limits.header_timeout_ms);
	read_on(c);
	if (c->broken) {
		conn_close(c, "cannot read", "client_closed");
		return -1;
	}
	return 0;
}

/* ---- the set ---- */

int
conn_set_init(struct conn_set *cs, uv_loop_t *loop, void *owner,
    const struct conf *c, void (*on_closed_cb)(void *owner))
{
	int rc;

	memset(cs, 0, sizeof(*cs));
	cs->loop = loop;
	cs->owner = owner;
	cs->conf = c;
	cs->on_closed = on_closed_cb;
	if ((rc = uv_check_init(loop, &cs->check)) != 0 ||
	    (rc = uv_idle_init(loop, &cs->idle)) != 0) {
		log_err("conn_set_init: %s", uv_strerror(rc));
		return -1;
	}
	cs->check.data = cs->idle.data = cs;
	return 0;
}

size_t
conn_set_count(const struct conn_set *cs)
{
	return cs->n;
}

void
conn_set_conf(struct conn_set *cs, const struct conf *c)
{
	cs->conf = c;
}

void
conn_set_drain(struct conn_set *cs)
{
	cs->draining = 1;
}

void
conn_set_close_all(struct conn_set *cs, const char *why)
{
	struct conn *c, *next;

	for (c = cs->head; c; c = next) {
		next = c->next;
		conn_close(c, why, "shutdown_deadline");
	}
}

void
conn_set_fini(struct conn_set *cs)
{
	uv_check_stop(&cs->check);
	uv_idle_stop(&cs->idle);
	uv_close((uv_handle_t *)&cs->check, NULL);
	uv_close((uv_handle_t *)&cs->idle, NULL);
}
