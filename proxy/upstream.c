/* upstream.c - see upstream.h: the pool of connections to WHM and the
 * calls on them. upcurl.c makes each connection (curl: connect, TLS,
 * verification) once; a call is then plain I/O on it: the request written
 * with curl_easy_send, the answer read with curl_easy_recv and parsed by
 * llhttp (HTTP_RESPONSE, strict). A curl transfer's per-call machinery
 * (URL parsing, header building, the connection look-up, a liveness peek)
 * is not run per call.
 *
 * Ownership:
 * - struct upstream (one per worker loop) owns its connections (struct
 *   wconn, u->conns); a connection owns its upcurl_conn (the easy handle
 *   and, once made, the socket) and its idle timer, and is freed in that
 *   timer's close callback, so a pointer to it stays valid until the
 *   loop's next pass.
 * - A call (struct upstream_req) is owned by this module from
 *   upstream_start until its on_done has run or it is cancelled; it is
 *   freed in its timer's close callback.
 * - Connections are made and dropped only from the loop's callbacks, never
 *   from inside curl (upcurl's callbacks run after curl returned).
 * - A call is never sent twice: once any byte of it was written, a failure
 *   ends it (502 upstream_closed before WHM's head). Only a call of which
 *   nothing was written moves to another connection. */
#include "upstream.h"
#include "upcurl.h"
#include "conf.h"
#include "log.h"
#include "util.h"

#include <curl/curl.h>
#include <llhttp.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RBUF 16384
#define KEY_MAX 600

enum wstate { W_CONNECTING, W_IDLE, W_BUSY };

struct wconn;

struct upstream {
	uv_loop_t *loop;
	struct upcurl curl;         /* makes the connections */
	int freeing;
	long max_conns, idle_ms;    /* of the current conf */
	char key[KEY_MAX];          /* the current conf's connection identity */
	struct wconn *conns;        /* every connection (connecting included) */
	size_t nconns, nidle, nwait;
	struct wconn *idle;         /* idle ones, most recent first */
	struct upstream_req *wait_head, *wait_tail;  /* waiting for one */
	char rbuf[RBUF];            /* every read lands here first */
};

struct wconn {
	struct upstream *u;
	struct wconn *prev, *next;            /* u->conns */
	struct wconn *iprev, *inext;          /* u->idle */
	struct upcurl_conn k;                 /* curl's easy handle, the socket */
	enum wstate state;
	int closing, in_io;
	unsigned long calls;                  /* calls it carried */
	uv_timer_t timer;                     /* idle timeout */
	struct upstream_req *req;
	llhttp_t p;
	char key[KEY_MAX];
};

struct upstream_req {
	struct upstream *u;
	struct wconn *w;
	struct upstream_req *wnext;           /* u->wait */
	const struct upstream_ops *ops;       /* NULL once cancelled */
	void *arg;
	const struct conf *conf;
	char key[KEY_MAX];
	struct buf out;                       /* head and body: holds the token */
	size_t off;
	struct buf held;                      /* unparsed bytes while held */
	size_t held_off;
	uv_timer_t timer;                     /* timeout_ms; defers on_done */
	int queued, sent, head_done, paused, complete, ended;
	int status;
	long long clen;
	char ctype[128];
	size_t ctype_len;
	char hname[16];
	size_t hname_len;
	int in_ctype;
	unsigned long long bytes;
	double t0;
	struct upstream_result late;          /* on_done deferred to the loop */
};

/* The pools of every worker together, for the status page. */
static atomic_size_t pool_open, pool_idle, pool_wait;

static llhttp_settings_t settings;      /* filled once, shared by workers */
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void dispatch(struct upstream_req *r);
static void w_close(struct wconn *w);
static void w_read(struct wconn *w);
static void on_made(void *owner, int ok, const char *kind, const char *why);
static void w_begin(struct wconn *w, struct upstream_req *r);
static void w_idle(struct wconn *w);
static void on_io(void *owner, int status, int events);

/* What a made connection's socket is watched for. */
static void
w_arm(struct wconn *w, int events)
{
	upcurl_arm(&w->k, events);
}

/* ---- results ---- */

static void
on_req_closed(uv_handle_t *h)
{
	struct upstream_req *r = h->data;

	/* The request head holds the WHM token. */
	if (r->out.p)
		OPENSSL_cleanse(r->out.p, r->out.cap);
	buf_fini(&r->out);
	buf_fini(&r->held);
	free(r);
}

static void
req_release(struct upstream_req *r)
{
	r->ops = NULL;
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void
wait_remove(struct upstream_req *r)
{
	struct upstream *u = r->u;
	struct upstream_req **pp, *prev = NULL;

	if (!r->queued)
		return;
	for (pp = &u->wait_head; *pp; prev = *pp, pp = &(*pp)->wnext)
		if (*pp == r) {
			*pp = r->wnext;
			if (u->wait_tail == r)
				u->wait_tail = prev;
			break;
		}
	r->queued = 0;
	u->nwait--;
	atomic_fetch_sub(&pool_wait, 1);
}

/* Ends call r with res: on_done once, then r is freed. */
static void
finish(struct upstream_req *r, struct upstream_result *res)
{
	const struct upstream_ops *ops = r->ops;

	wait_remove(r);
	r->ended = 1;
	if (r->w && r->w->req == r)
		r->w->req = NULL;
	r->w = NULL;
	res->status = r->status;
	res->bytes = r->bytes;
	res->sent = r->sent;
	res->ms = time_ms() - r->t0;
	req_release(r);
	if (ops)
		ops->on_done(r->arg, res);
}

static void
fail(struct upstream_req *r, int status, const char *code, const char *error,
    const char *kind, const char *detail)
{
	struct upstream_result res;

	memset(&res, 0, sizeof(res));
	res.err_status = status;
	res.err_code = code;
	res.error = error;
	res.kind = kind;
	res.detail = detail;
	finish(r, &res);
}

/* A connection failed under its call: what that means for the call. */
static void
fail_io(struct upstream_req *r, const char *detail)
{
	if (!r->sent) {
		fail(r, 502, "upstream_unavailable", "connect", "reset", detail);
		return;
	}
	/* Written, so not sent again: WHM may have acted on it. */
	fail(r, 502, "upstream_unavailable", r->head_done ? "upstream_reset" :
	    "upstream_closed", "reset", detail);
}

static void
on_late(uv_timer_t *t)
{
	struct upstream_req *r = t->data;

	finish(r, &r->late);
}

/* Ends r with a result from the next loop pass: for failures found inside
 * upstream_start, which may not call back. */
static void
fail_later(struct upstream_req *r, const char *detail)
{
	memset(&r->late, 0, sizeof(r->late));
	r->late.err_status = 502;
	r->late.err_code = "upstream_unavailable";
	r->late.error = "connect";
	r->late.kind = "connect";
	r->late.detail = detail;
	uv_timer_start(&r->timer, on_late, 0, 0);
}

/* ---- connections ---- */

/* What a connection was made under: a call uses only a connection made
 * with its conf's URL, CA and pin, so after a reload to another CA no
 * connection verified under the old one carries a call. */
static void
conf_key(const struct conf *c, char *out)
{
	snprintf(out, KEY_MAX, "%s|%s|%s|%d", c->upstream.base,
	    c->upstream.ca_id[0] ? c->upstream.ca_id : "-",
	    c->upstream.pinned_pubkey ? c->upstream.pinned_pubkey : "-",
	    c->upstream.insecure_skip_verify);
}

static void
on_w_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
idle_remove(struct wconn *w)
{
	struct upstream *u = w->u;

	if (w->state != W_IDLE)
		return;
	if (w->iprev)
		w->iprev->inext = w->inext;
	else
		u->idle = w->inext;
	if (w->inext)
		w->inext->iprev = w->iprev;
	w->iprev = w->inext = NULL;
	u->nidle--;
	atomic_fetch_sub(&pool_idle, 1);
	uv_timer_stop(&w->timer);
}

/* Calls that wait get a connection when one can be had. */
static void
serve_waiting(struct upstream *u)
{
	struct upstream_req *r;

	while (!u->freeing && (r = u->wait_head) != NULL &&
	    (u->idle || u->nconns < (size_t)u->max_conns)) {
		wait_remove(r);
		dispatch(r);
	}
}

/* The one teardown of a connection; its call, if any, is the caller's. */
static void
w_close(struct wconn *w)
{
	struct upstream *u = w->u;

	if (w->closing)
		return;
	idle_remove(w);
	w->closing = 1;
	if (w->prev)
		w->prev->next = w->next;
	else
		u->conns = w->next;
	if (w->next)
		w->next->prev = w->prev;
	u->nconns--;
	atomic_fetch_sub(&pool_open, 1);
	upcurl_drop(&u->curl, &w->k);
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, on_w_closed);
	serve_waiting(u);
}

static void
on_idle_timeout(uv_timer_t *t)
{
	w_close(t->data);
}

/* Opens a connection for call r. */
static void
w_open(struct upstream_req *r)
{
	struct upstream *u = r->u;
	struct wconn *w = calloc(1, sizeof(*w));

	if (w == NULL || uv_timer_init(u->loop, &w->timer) != 0) {
		free(w);
		fail_later(r, "out of memory");
		return;
	}
	w->timer.data = w;
	w->u = u;
	/* Strict mode (the build's LLHTTP_STRICT_MODE): WHM's answers are
	 * framed as strictly as the clients' requests. */
	llhttp_init(&w->p, HTTP_RESPONSE, &settings);
	w->p.data = w;
	memcpy(w->key, r->key, sizeof(w->key));
	w->state = W_CONNECTING;
	w->req = r;
	r->w = w;
	w->next = u->conns;
	if (u->conns)
		u->conns->prev = w;
	u->conns = w;
	u->nconns++;
	atomic_fetch_add(&pool_open, 1);
	if (upcurl_open(&u->curl, &w->k, r->conf, w) == -1) {
		r->w = NULL;
		w->req = NULL;
		w_close(w);
		fail_later(r, "cannot start a connection to WHM");
	}
}

/* curl made the connection (or not): its call goes out, or fails. */
static void
on_made(void *owner, int ok, const char *kind, const char *why)
{
	struct wconn *w = owner;
	struct upstream_req *r = w->req;

	if (!ok) {
		w->req = NULL;
		w_close(w);
		if (r) {
			r->w = NULL;
			fail(r, 502, "upstream_unavailable", kind, kind, why);
		}
		return;
	}
	if (r)
		w_begin(w, r);
	else
		w_idle(w);
}


/* A connection is free: the oldest waiting call takes it, else it waits
 * (watched: WHM closing it removes it). */
static void
w_idle(struct wconn *w)
{
	struct upstream *u = w->u;
	struct upstream_req *r;

	w->req = NULL;
	if (strcmp(w->key, u->key) != 0) {
		w_close(w);         /* made under settings a reload replaced */
		return;
	}
	if ((r = u->wait_head) != NULL && strcmp(r->key, w->key) == 0) {
		wait_remove(r);
		w_begin(w, r);
		return;
	}
	w->state = W_IDLE;
	w->inext = u->idle;
	w->iprev = NULL;
	if (u->idle)
		u->idle->iprev = w;
	u->idle = w;
	u->nidle++;
	atomic_fetch_add(&pool_idle, 1);
	uv_timer_start(&w->timer, on_idle_timeout, (uint64_t)u->idle_ms, 0);
	w_arm(w, UV_READABLE);
}

/* ---- one call on one connection ---- */

static int
w_send(struct wconn *w)
{
	struct upstream_req *r = w->req;
	CURLcode rc;
	size_t n;

	while (r->off < r->out.len) {
		n = 0;
		rc = curl_easy_send(w->k.easy, r->out.p + r->off, r->out.len - r->off,
		    &n);
		if (rc == CURLE_AGAIN) {
			w_arm(w, UV_READABLE | UV_WRITABLE);
			return 0;
		}
		if (rc != CURLE_OK)
			return -1;
		if (n > 0)
			r->sent = 1;
		r->off += n;
	}
	w_arm(w, UV_READABLE);
	return 0;
}

/* Moves call r off a connection that failed before any byte of it was
 * written (a pooled connection WHM had closed): another one takes it. */
static void
w_fail(struct wconn *w, const char *detail)
{
	struct upstream_req *r = w->req;
	int reused = w->calls > 1;

	w->req = NULL;
	w_close(w);
	if (r == NULL || r->ended)
		return;
	r->w = NULL;
	if (!r->sent && reused && r->ops) {
		dispatch(r);
		return;
	}
	fail_io(r, detail);
}

static void
w_begin(struct wconn *w, struct upstream_req *r)
{
	idle_remove(w);
	w->state = W_BUSY;
	w->req = r;
	w->calls++;
	r->w = w;
	llhttp_reset(&w->p);
	if (w_send(w) == -1)
		w_fail(w, "cannot send the call");
}

static void
complete(struct wconn *w, int extra)
{
	struct upstream_req *r = w->req;
	struct upstream_result res;
	int keep = !extra && llhttp_should_keep_alive(&w->p);

	if (keep)
		w_idle(w);
	else
		w_close(w);
	memset(&res, 0, sizeof(res));
	finish(r, &res);
}

/* Parses n bytes of WHM's answer. Returns 0 to read on, 1 when the call
 * was held or ended, -1 on a broken answer (w failed). */
static int
w_feed(struct wconn *w, const char *p, size_t n, int from_held)
{
	struct upstream_req *r = w->req;
	llhttp_errno_t e;
	const char *pos;
	size_t rest;

	e = llhttp_execute(&w->p, p, n);
	if (e == HPE_OK)
		return 0;
	if (e != HPE_PAUSED || r == NULL || r->ops == NULL) {
		w_fail(w, r && r->ops ? llhttp_get_error_reason(&w->p) :
		    "call cancelled");
		return -1;
	}
	pos = llhttp_get_error_pos(&w->p);
	rest = (size_t)(p + n - pos);
	if (r->complete) {
		/* Bytes after the answer: WHM is out of step; the
		 * connection is not used again. */
		complete(w, rest > 0);
		return 1;
	}
	/* Held by the consumer: keep what is not parsed yet. */
	r->paused = 1;
	if (from_held) {
		r->held_off = (size_t)(pos - r->held.p);
	} else {
		r->held.len = 0;
		r->held_off = 0;
		if (buf_add(&r->held, pos, rest) == -1) {
			w_fail(w, "out of memory");
			return -1;
		}
	}
	w_arm(w, 0);
	return 1;
}

/* Reads what WHM sent, until curl has no more, the consumer holds, or the
 * answer ends. */
static void
w_read(struct wconn *w)
{
	struct upstream *u = w->u;
	struct upstream_req *r;
	llhttp_errno_t e;
	CURLcode rc;
	size_t n;

	while (!w->closing && (r = w->req) != NULL && !r->paused) {
		n = 0;
		rc = curl_easy_recv(w->k.easy, u->rbuf, sizeof(u->rbuf), &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK) {
			w_fail(w, curl_easy_strerror(rc));
			return;
		}
		if (n == 0) {
			/* The end, by FIN or close_notify alike: complete only
			 * if the answer's framing says so (a body that runs to
			 * the close). */
			e = llhttp_finish(&w->p);
			if ((e == HPE_OK || e == HPE_PAUSED) && r->complete)
				complete(w, 1);
			else
				w_fail(w, "WHM closed the connection mid-answer");
			return;
		}
		if (w_feed(w, u->rbuf, n, 0) != 0)
			return;
	}
}

/* Readable while idle: WHM closed the connection (or sent what nobody
 * asked for); TLS housekeeping (a session ticket) reads as nothing. */
static void
w_idle_readable(struct wconn *w)
{
	CURLcode rc;
	size_t n = 0;

	rc = curl_easy_recv(w->k.easy, w->u->rbuf, sizeof(w->u->rbuf), &n);
	if (rc == CURLE_AGAIN)
		return;
	w_close(w);
}

/* The socket of a made connection is ready (upcurl's io callback). */
static void
on_io(void *owner, int status, int events)
{
	struct wconn *w = owner;
	struct upstream_req *r = w->req;

	if (status < 0)
		events |= UV_READABLE;   /* let recv say what happened */
	switch (w->state) {
	case W_IDLE:
		if (events & UV_READABLE)
			w_idle_readable(w);
		return;
	case W_BUSY:
		if (r == NULL)
			return;
		if (r->off < r->out.len) {
			if ((events & UV_WRITABLE) || status < 0)
				if (w_send(w) == -1) {
					w_fail(w, "cannot send the call");
					return;
				}
			if (r->off < r->out.len)
				return;
		}
		if ((events & UV_READABLE) && !r->paused) {
			w->in_io = 1;
			w_read(w);
			w->in_io = 0;
		}
		return;
	case W_CONNECTING:
		return;
	}
}

/* ---- the answer's parser ---- */

static int
on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct upstream_req *r = ((struct wconn *)p->data)->req;
	size_t i;

	for (i = 0; i < n && r->hname_len < sizeof(r->hname); i++)
		r->hname[r->hname_len++] = (char)(at[i] | 0x20);
	if (i < n)
		r->hname_len = sizeof(r->hname);   /* too long: no match */
	return 0;
}

static int
on_header_field_complete(llhttp_t *p)
{
	struct upstream_req *r = ((struct wconn *)p->data)->req;

	r->in_ctype = r->hname_len == 12 && memcmp(r->hname, "content-type", 12) == 0;
	r->hname_len = 0;
	if (r->in_ctype)
		r->ctype_len = 0;
	return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct upstream_req *r = ((struct wconn *)p->data)->req;
	size_t i;

	/* Relayed to the client: printable ASCII only, bounded. */
	for (i = 0; r->in_ctype && i < n && r->ctype_len < sizeof(r->ctype) - 1; i++)
		r->ctype[r->ctype_len++] = at[i] >= 0x20 && at[i] < 0x7f ?
		    at[i] : '?';
	return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
	struct upstream_req *r = ((struct wconn *)p->data)->req;

	r->in_ctype = 0;
	return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct wconn *w = p->data;
	struct upstream_req *r = w->req;

	r->status = llhttp_get_status_code(p);
	if (r->status < 200)
		return 0;          /* 1xx: the final answer follows */
	while (r->ctype_len && (r->ctype[r->ctype_len - 1] == ' ' ||
	    r->ctype[r->ctype_len - 1] == '\t'))
		r->ctype_len--;
	r->ctype[r->ctype_len] = '\0';
	r->clen = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED) ?
	    (long long)p->content_length : -1;
	r->head_done = 1;
	if (r->ops)
		r->ops->on_head(r->arg, r->status, r->ctype, r->clen);
	return r->ops ? 0 : HPE_USER;
}

static int
on_body(llhttp_t *p, const char *at, size_t n)
{
	struct upstream_req *r = ((struct wconn *)p->data)->req;

	if (r->ops == NULL)
		return HPE_USER;
	r->bytes += n;
	if (r->ops->on_data(r->arg, at, n))
		return HPE_PAUSED;
	return r->ops ? 0 : HPE_USER;
}

static int
on_message_complete(llhttp_t *p)
{
	struct upstream_req *r = ((struct wconn *)p->data)->req;

	if (r->status < 200) {
		/* The 1xx is over: forget its head. */
		r->ctype_len = 0;
		return 0;
	}
	r->complete = 1;
	return HPE_PAUSED;         /* stop at the answer's end */
}


static void
settings_init(void)
{
	llhttp_settings_init(&settings);
	settings.on_header_field = on_header_field;
	settings.on_header_field_complete = on_header_field_complete;
	settings.on_header_value = on_header_value;
	settings.on_header_value_complete = on_header_value_complete;
	settings.on_headers_complete = on_headers_complete;
	settings.on_body = on_body;
	settings.on_message_complete = on_message_complete;
}

/* ---- calls ---- */

/* Finds an idle connection for r or opens one, else r waits. */
static void
dispatch(struct upstream_req *r)
{
	struct upstream *u = r->u;
	struct wconn *w;

	for (w = u->idle; w; w = w->inext)
		if (strcmp(w->key, r->key) == 0) {
			w_begin(w, r);
			return;
		}
	if (u->nconns < (size_t)u->max_conns) {
		w_open(r);
		return;
	}
	/* An idle connection of other settings makes room. */
	if (u->idle) {
		w_close(u->idle);
		if (u->nconns < (size_t)u->max_conns) {
			w_open(r);
			return;
		}
	}
	r->queued = 1;
	r->wnext = NULL;
	if (u->wait_tail)
		u->wait_tail->wnext = r;
	else
		u->wait_head = r;
	u->wait_tail = r;
	u->nwait++;
	atomic_fetch_add(&pool_wait, 1);
}

static void
on_call_timeout(uv_timer_t *t)
{
	struct upstream_req *r = t->data;
	struct wconn *w = r->w;

	if (w) {
		w->req = NULL;
		r->w = NULL;
		w_close(w);          /* mid-call: it cannot carry another */
	}
	if (!r->sent)
		fail(r, 502, "upstream_unavailable", "connect_timeout", "connect",
		    "no connection to WHM in time");
	else
		fail(r, 504, "upstream_timeout", "timeout", "timeout",
		    "WHM did not answer in time");
}

/* The request as it goes on the wire (SPEC section 5): the rebuilt line,
 * then exactly these headers. */
static int
build(struct upstream_req *r, const struct conf *c, const struct client *cl,
    const struct upstream_call *call)
{
	struct buf *o = &r->out;
	const char *host = c->upstream.base + 8;   /* after "https://" */
	int rc = 0;

	/* Sized first, so the token is never left behind in a buffer that
	 * grew away from it. */
	if (buf_reserve(o, 256 + strlen(call->target) + strlen(host) +
	    strlen(cl->whm_user) + strlen(cl->whm_token) +
	    strlen(call->request_id) + (call->body ? call->body_len : 0)) == -1)
		return -1;
	rc |= buf_adds(o, call->body ? "POST " : "GET ");
	rc |= buf_adds(o, call->target);
	rc |= buf_adds(o, " HTTP/1.1\r\nHost: ");
	rc |= buf_adds(o, host);
	rc |= buf_adds(o, "\r\nAuthorization: whm ");
	rc |= buf_adds(o, cl->whm_user);
	rc |= buf_addc(o, ':');
	rc |= buf_adds(o, cl->whm_token);
	rc |= buf_adds(o, "\r\nAccept: application/json\r\nUser-Agent: whmgate/"
	    WHMGATE_VERSION "\r\nX-Request-Id: ");
	rc |= buf_adds(o, call->request_id);
	if (call->body) {
		rc |= buf_adds(o, "\r\nContent-Type: application/x-www-form-urlencoded"
		    "\r\nContent-Length: ");
		rc |= buf_addu(o, (unsigned long long)call->body_len);
		rc |= buf_adds(o, "\r\n\r\n");
		rc |= buf_add(o, call->body, call->body_len);
	} else {
		rc |= buf_adds(o, "\r\n\r\n");
	}
	return rc ? -1 : 0;
}

struct upstream_req *
upstream_start(struct upstream *u, const struct conf *c,
    const struct client *cl, const struct upstream_call *call,
    const struct upstream_ops *ops, void *arg)
{
	struct upstream_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if (uv_timer_init(u->loop, &r->timer) != 0) {
		free(r);
		return NULL;
	}
	r->timer.data = r;
	r->u = u;
	r->ops = ops;
	r->arg = arg;
	r->conf = c;
	r->clen = -1;
	r->t0 = time_ms();
	buf_init(&r->out);
	buf_init(&r->held);
	if (build(r, c, cl, call) == -1) {
		r->ops = NULL;
		req_release(r);
		return NULL;
	}
	conf_key(c, r->key);
	uv_timer_start(&r->timer, on_call_timeout, (uint64_t)c->upstream.timeout_ms, 0);
	/* No callback from here: failures found now are delivered from the
	 * loop (fail_later), and WHM's answer comes through on_poll. */
	dispatch(r);
	return r;
}

void
upstream_resume(struct upstream_req *r)
{
	struct wconn *w = r->w;

	if (!r->paused || w == NULL || r->ended)
		return;
	r->paused = 0;
	llhttp_resume(&w->p);
	w->in_io = 1;
	/* What was read but held goes first; then the socket, and what
	 * OpenSSL already decrypted, which no poll would announce. */
	if (w_feed(w, r->held.p + r->held_off, r->held.len - r->held_off, 1) == 0 &&
	    !w->closing && w->req == r) {
		r->held.len = r->held_off = 0;
		w_arm(w, UV_READABLE);
		w_read(w);
	}
	w->in_io = 0;
}

void
upstream_cancel(struct upstream_req *r)
{
	struct wconn *w = r->w;

	if (r->ended)
		return;
	r->ops = NULL;
	if (w && w->in_io)
		return;          /* the read loop sees ops NULL and fails w */
	if (w) {
		w->req = NULL;
		r->w = NULL;
		/* Mid-call or mid-connect, it cannot carry another call. */
		w_close(w);
	}
	wait_remove(r);
	r->ended = 1;
	req_release(r);
}

/* ---- the pool ---- */

struct upstream *
upstream_new(uv_loop_t *loop, const struct conf *c)
{
	struct upstream *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	pthread_once(&settings_once, settings_init);
	u->loop = loop;
	if (upcurl_init(&u->curl, loop, on_made, on_io) == -1) {
		free(u);
		return NULL;
	}
	upstream_set_conf(u, c);
	return u;
}

void
upstream_set_conf(struct upstream *u, const struct conf *c)
{
	struct wconn *w, *next;

	u->max_conns = c->upstream.max_connections;
	u->idle_ms = c->upstream.idle_timeout_ms;
	conf_key(c, u->key);
	for (w = u->idle; w; w = next) {
		next = w->inext;
		if (strcmp(w->key, u->key) != 0)
			w_close(w);
	}
	serve_waiting(u);
}

void
upstream_pool(size_t *open, size_t *idle, size_t *waiting)
{
	*open = atomic_load(&pool_open);
	*idle = atomic_load(&pool_idle);
	*waiting = atomic_load(&pool_wait);
}

static void
on_curl_closed(void *arg)
{
	free(arg);
}

void
upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	u->freeing = 1;
	while (u->conns)
		w_close(u->conns);
	upcurl_fini(&u->curl, on_curl_closed, u);
}
