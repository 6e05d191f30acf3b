/* conn.c - a client connection and the one request it serves at a time.
 *
 * Ownership and lifecycle:
 * - The server owns its connections (a list); a connection owns at most one
 *   request, c->req. Pipelined bytes wait in c->in while a request runs;
 *   reading stops until its response is written.
 * - A request owns its arena (every string of it), its parser output, its
 *   upstream transfer and a reference to the conf it started with.
 * - One teardown each: conn_close() and req_free(). A request whose client
 *   goes away while its request record is being written is detached
 *   (r->c = NULL) and freed by the audit callback; during an upstream
 *   transfer the transfer is cancelled and the request freed at once.
 * - Answer bytes gathered in a loop pass wait in c->cork (listed in
 *   srv->corked until the check phase writes them); an idle connection
 *   holds no cork buffer.
 * - libuv handles are freed only in their close callbacks (two per conn).
 * - Every request ends with exactly one deny record, or one request and one
 *   response record: req_deny() and req_response_record() are the only
 *   writers, and r->recorded guards them.
 *
 * The way of one request: read and parse (http) -> target, method, auth,
 * source, media type at the head -> rate, parameters, policy, in-flight at
 * the end of the message -> request record, durable -> upstream -> stream
 * back -> response record -> keep-alive or close. */
#include "conn.h"
#include "audit.h"
#include "auth.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "outcome.h"
#include "params.h"
#include "policy.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#include <arpa/inet.h>
#include <math.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#define READ_CHUNK 65536
#define OUT_HIGH (256 * 1024)   /* pause WHM above this many unsent bytes */
#define OUT_LOW (64 * 1024)     /* resume below */
#define CORK_MAX (64 * 1024)    /* write gathered body pieces at this size */
#define IN_CAP (2 * READ_CHUNK)  /* pipelined bytes held while a request runs */
#define LINGER_MS 2000
#define LINGER_BYTES (1 << 20)

enum timer_kind { T_NONE, T_HEADER, T_IDLE, T_WRITE, T_LINGER };
enum req_state { R_READ, R_AUDIT, R_UPSTREAM, R_DONE };

struct req;

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct server *srv;
	struct conn *prev, *next;
	int closing, handles, lingering, close_after;
	enum timer_kind timer_kind;
	uv_shutdown_t shut;
	char ip[INET6_ADDRSTRLEN];
	int port, family;
	unsigned char addr[16];
	struct http_parser hp;
	struct buf in;
	size_t in_off, linger_bytes;
	struct req *req;
	size_t out_pending;
	/* Body pieces WHM sent during this loop pass, gathered (encrypted
	 * on TLS) to go out in one write: curl hands them over 16 KiB at a
	 * time, and a write each cost a syscall and a wake-up of the client
	 * for every piece of a large answer. */
	struct buf cork;
	struct conn *cork_next;    /* in srv->corked */
	int corked;
	struct tls_conn *tls;      /* NULL on plain HTTP listeners */
};

struct req {
	struct conn *c;            /* NULL once the client went away */
	struct server *srv;
	struct conf *conf;
	struct arena arena;
	struct http_req http;
	char id[25];
	double t0;
	enum req_state state;
	const struct client *client;
	enum auth_scheme scheme;
	char *path;
	const char *query;
	const char *function;
	struct call call;
	int have_call;
	const char *rule;
	struct upstream_req *up;
	struct buf upbody;
	int head_sent, chunked, paused, recorded, counted_inflight;
	int status;
	double t_up;               /* when the upstream call started */
	struct buf head;           /* response head waiting for the body */
	unsigned long long relayed; /* body bytes passed to the client */
	/* Last: req_new zeroes what is above it; outcome_init sets it up
	 * when the call goes out (oc.h NULL until then). */
	struct outcome oc;
};

static void conn_feed(struct conn *c);
static void conn_close(struct conn *c, const char *why);
static void req_done(struct conn *c);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void in_compact(struct conn *c);

/* ---- per-client limits, kept across reloads by client id ---- */

struct client_state {
	char id[65];
	double tokens, last;
	long inflight;
};

/* Shared by every worker: look-ups and updates hold states_mu. */
static struct client_state states[1024];
static size_t nstates;
static uv_mutex_t states_mu;
static uv_once_t states_once = UV_ONCE_INIT;

static void
states_init(void)
{
	uv_mutex_init(&states_mu);
}

/* Under states_mu. */
static struct client_state *
client_state(const char *id)
{
	size_t i;

	for (i = 0; i < nstates; i++)
		if (strcmp(states[i].id, id) == 0)
			return &states[i];
	if (nstates == sizeof(states) / sizeof(states[0]))
		return NULL;
	snprintf(states[nstates].id, sizeof(states[0].id), "%s", id);
	states[nstates].tokens = -1;
	return &states[nstates++];
}

/* Token bucket: 0 if a token was taken, else the seconds to wait. */
static double
rate_take(const struct client *cl)
{
	struct client_state *st;
	double now = time_ms() / 1000.0, wait = 0;

	uv_once(&states_once, states_init);
	uv_mutex_lock(&states_mu);
	if ((st = client_state(cl->id)) != NULL) {
		if (st->tokens < 0) {
			st->tokens = cl->rate_burst;
			st->last = now;
		}
		st->tokens += (now - st->last) * cl->rate_per_second;
		if (st->tokens > cl->rate_burst)
			st->tokens = cl->rate_burst;
		st->last = now;
		if (st->tokens >= 1)
			st->tokens -= 1;
		else
			wait = (1 - st->tokens) / cl->rate_per_second;
	}
	uv_mutex_unlock(&states_mu);
	return wait;
}

/* Counts a call forwarded to WHM; -1 when the client is at max_inflight. */
static int
inflight_take(const struct client *cl)
{
	struct client_state *st;
	int rc = 0;

	uv_once(&states_once, states_init);
	uv_mutex_lock(&states_mu);
	if ((st = client_state(cl->id)) != NULL) {
		if (st->inflight >= cl->max_inflight)
			rc = -1;
		else
			st->inflight++;
	}
	uv_mutex_unlock(&states_mu);
	return rc;
}

static void
inflight_put(struct req *r)
{
	struct client_state *st;

	if (!r->counted_inflight)
		return;
	r->counted_inflight = 0;
	uv_mutex_lock(&states_mu);
	if ((st = client_state(r->client->id)) != NULL)
		st->inflight--;
	uv_mutex_unlock(&states_mu);
}

/* ---- writing to the client ---- */

struct wreq {
	uv_write_t w;
	struct conn *c;
	size_t len;
	char data[];
};

static void
on_written(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = wr->c;
	struct req *r;

	c->out_pending -= wr->len;
	free(wr);
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c, "write failed");
		return;
	}
	r = c->req;
	if (r && r->paused && c->out_pending < OUT_LOW) {
		r->paused = 0;
		uv_timer_stop(&c->timer);
		c->timer_kind = T_NONE;
		upstream_resume(r->up);
		return;
	}
	if (r && r->paused && c->timer_kind == T_WRITE)
		uv_timer_again(&c->timer);      /* progress: the stall clock restarts */
	if (r && r->state == R_DONE && c->out_pending == 0)
		req_done(c);
}

/* Sends the concatenation of up to three pieces, as they go on the wire:
 * straight to the socket when nothing is queued (no copy), and what the
 * socket does not take now is copied and queued. */
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
	int sent;

	/* uv_try_write refuses (UV_EAGAIN) while writes are queued, so
	 * the order of bytes on the wire is kept. */
	if (c->out_pending == 0 && n > 0) {
		sent = uv_try_write((uv_stream_t *)&c->tcp, in, 3);
		if (sent > 0)
			skip = (size_t)sent;
		else if (sent < 0 && sent != UV_EAGAIN)
			return -1;
		if (skip == n)
			return 0;
	}
	n -= skip;
	if ((wr = malloc(sizeof(*wr) + n)) == NULL)
		return -1;
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
	if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &ub, 1, on_written) != 0) {
		free(wr);
		return -1;
	}
	c->out_pending += n;
	return 0;
}

/* Writes what the connection gathered. */
static int
cork_flush(struct conn *c)
{
	int rc = 0;

	if (c->cork.len > 0 && !c->closing)
		rc = raw_write(c, c->cork.p, c->cork.len, NULL, 0, NULL, 0);
	c->cork.len = 0;
	return rc;
}

/* Appends up to three pieces to the cork, encrypted on TLS. */
static int
cork_append(struct conn *c, const char *a, size_t an, const char *b,
    size_t bn, const char *d, size_t dn)
{
	int rc = 0;

	if (c->closing)
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
	return rc ? -1 : 0;
}

/* Gathers a piece of the answer; it goes out at the end of this loop pass
 * (conn_flush_corked) or once CORK_MAX bytes are waiting. */
static int
cork_add(struct conn *c, const char *a, size_t an, const char *b, size_t bn,
    const char *d, size_t dn)
{
	struct server *s = c->srv;

	if (cork_append(c, a, an, b, bn, d, dn) == -1)
		return -1;
	if (c->cork.len >= CORK_MAX)
		return cork_flush(c);
	if (!c->corked) {
		c->corked = 1;
		c->cork_next = s->corked;
		s->corked = c;
		uv_check_start(&s->flush, conn_flush_corked);
	}
	return 0;
}

static void
cork_unlink(struct conn *c)
{
	struct conn **pp;

	if (!c->corked)
		return;
	for (pp = &c->srv->corked; *pp; pp = &(*pp)->cork_next) {
		if (*pp == c) {
			*pp = c->cork_next;
			break;
		}
	}
	c->corked = 0;
}

void
conn_flush_corked(uv_check_t *h)
{
	struct server *s = h->data;
	struct conn *c;

	while ((c = s->corked) != NULL) {
		s->corked = c->cork_next;
		c->corked = 0;
		if (cork_flush(c) == -1)
			conn_close(c, "write failed");
	}
	uv_check_stop(h);
}

/* Writes a response piece now, after what was gathered, so the bytes keep
 * their order. */
static int
conn_write(struct conn *c, const char *a, size_t an, const char *b, size_t bn,
    const char *d, size_t dn)
{
	if (cork_append(c, a, an, b, bn, d, dn) == -1)
		return -1;
	return cork_flush(c);
}

static const char *
status_text(int s)
{
	switch (s) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t);

static void
timer_set(struct conn *c, enum timer_kind k, uint64_t ms)
{
	c->timer_kind = k;
	uv_timer_start(&c->timer, on_timer, ms, k == T_WRITE ? ms : 0);
}

/* ---- audit records ---- */

static void
event_init(struct req *r, struct audit_event *ev, const char *type)
{
	memset(ev, 0, sizeof(*ev));
	ev->conf = r->conf;
	ev->type = type;
	ev->id = r->id;
	ev->client_id = r->client ? r->client->id : NULL;
	ev->auth = auth_scheme_name(r->scheme);
	if (r->c) {
		ev->ip = r->c->ip;
		ev->port = r->c->port;
	}
	ev->method = r->http.method;
	ev->path = r->path;
	ev->function = r->function;
	ev->whm_user = r->client ? r->client->whm_user : NULL;
	ev->call = r->have_call ? &r->call : NULL;
	ev->decision = -1;
	ev->up_status = -1;
	ev->ms = time_ms() - r->t0;
}

static void
req_deny_record(struct req *r, int status, const char *code,
    const char *reason)
{
	struct audit_event ev;

	if (r->recorded)
		return;
	r->recorded = 1;
	/* Refused before the target was checked: still say which path. */
	if (r->path == NULL && r->http.target)
		r->path = arena_strndup(&r->arena, r->http.target,
		    strcspn(r->http.target, "?#"));
	event_init(r, &ev, "deny");
	ev.status = status;
	ev.with_params = 1;
	ev.decision = 0;
	ev.rule = r->rule;
	ev.code = code;
	ev.reason = reason;
	if (audit_record(r->srv->audit, r->srv->sink, &ev, NULL, NULL) == -1)
		log_warn("audit: deny record of %s not queued", r->id);
	metrics_request(r->conf, ev.client_id, r->function, "deny", ev.ms / 1e3);
}

static void
req_response_record(struct req *r, int status, const struct upstream_result *res,
    const char *error)
{
	struct audit_event ev;

	if (r->recorded)
		return;
	r->recorded = 1;
	inflight_put(r);
	event_init(r, &ev, "response");
	ev.status = status;
	ev.outcome = r->oc.h ? &r->oc : NULL;
	ev.up_status = res ? res->status : 0;
	ev.up_ms = res ? res->ms : 0;
	ev.up_bytes = res ? res->bytes : 0;
	ev.up_error = error;
	if (audit_record(r->srv->audit, r->srv->sink, &ev, NULL, NULL) == -1)
		log_warn("audit: response record of %s not queued", r->id);
	metrics_request(r->conf, ev.client_id, r->function, "allow", ev.ms / 1e3);
}

/* ---- requests ---- */

static _Thread_local unsigned char id_seed[8];
static _Thread_local uint32_t id_count;

static struct req *
req_new(struct conn *c)
{
	struct req *r = malloc(sizeof(*r));
	unsigned char rnd[12];

	if (r == NULL)
		return NULL;
	memset(r, 0, offsetof(struct req, oc));
	r->oc.h = NULL;
	r->c = c;
	r->srv = c->srv;
	r->conf = conf_ref(c->srv->conf);
	arena_init(&r->arena);
	r->http.arena = &r->arena;
	buf_init(&r->upbody);
	r->t0 = time_ms();
	buf_init(&r->head);
	/* Ids are unique, not secret: a random prefix per thread and a
	 * counter (RAND_bytes per request showed in profiles). */
	if (id_count == 0 && RAND_bytes(id_seed, sizeof(id_seed)) != 1)
		memset(id_seed, 0, sizeof(id_seed));
	memcpy(rnd, id_seed, 8);
	rnd[8] = (unsigned char)(id_count >> 24);
	rnd[9] = (unsigned char)(id_count >> 16);
	rnd[10] = (unsigned char)(id_count >> 8);
	rnd[11] = (unsigned char)id_count;
	id_count++;                 /* at 2^32 it wraps to 0: a new prefix */
	hex_encode(rnd, sizeof(rnd), r->id);
	http_begin(&c->hp, &r->http);
	c->srv->inflight++;
	return r;
}

static void
req_free(struct req *r)
{

	if (r->up)
		upstream_cancel(r->up);
	inflight_put(r);
	if (r->oc.h)
		outcome_fini(&r->oc);
	buf_fini(&r->http.body);
	buf_fini(&r->upbody);
	buf_fini(&r->head);
	arena_fini(&r->arena);
	conf_unref(r->conf);
	r->srv->inflight--;
	free(r);
}

/* WHM's API 1 envelope, so WHM clients read our refusals as failures. */
static void
error_body(struct req *r, const char *code, const char *reason, struct buf *out)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *p;
	size_t n;

	if (g == NULL)
		return;
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"metadata", 8);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"version", 7);
	yajl_gen_integer(g, 1);
	yajl_gen_string(g, (const unsigned char *)"result", 6);
	yajl_gen_integer(g, 0);
	yajl_gen_string(g, (const unsigned char *)"command", 7);
	yajl_gen_string(g, (const unsigned char *)(r->function ? r->function : ""),
	    r->function ? strlen(r->function) : 0);
	yajl_gen_string(g, (const unsigned char *)"reason", 6);
	yajl_gen_string(g, (const unsigned char *)reason, strlen(reason));
	yajl_gen_map_close(g);
	yajl_gen_string(g, (const unsigned char *)"whmgate", 7);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"error", 5);
	yajl_gen_string(g, (const unsigned char *)code, strlen(code));
	yajl_gen_string(g, (const unsigned char *)"request_id", 10);
	yajl_gen_string(g, (const unsigned char *)r->id, strlen(r->id));
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &p, &n) == yajl_gen_status_ok)
		buf_add(out, p, n);
	buf_addc(out, '\n');
	yajl_gen_free(g);
}

/* Sends whmgate's own error answer. */
static void
send_error(struct req *r, int status, const char *code, const char *reason,
    double retry_after)
{
	struct conn *c = r->c;
	struct buf head, body;

	buf_init(&head);
	buf_init(&body);
	if (c->srv->draining)
		c->close_after = 1;
	error_body(r, code, reason, &body);
	buf_printf(&head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nX-Request-Id: %s\r\n", status,
	    status_text(status), body.len, r->id);
	if (status == 401)
		buf_adds(&head, "WWW-Authenticate: Bearer realm=\"whmgate\"\r\n");
	if (retry_after > 0)
		buf_printf(&head, "Retry-After: %.0f\r\n", ceil(retry_after));
	if (c->close_after)
		buf_adds(&head, "Connection: close\r\n");
	buf_adds(&head, "\r\n");
	r->status = status;
	/* An answer to HEAD has no body (RFC 9110, 9.3.2): a keep-alive
	 * client would read it as the next answer. */
	if (r->http.method_id == HTTP_HEAD)
		body.len = 0;
	if (conn_write(c, head.p, head.len, body.p, body.len, NULL, 0) == -1)
		conn_close(c, "write failed");
	buf_fini(&head);
	buf_fini(&body);
}

/* The one door for refusals: the answer and the deny record. */
static void
req_refuse(struct req *r, int status, const char *code, const char *reason,
    int close, double retry_after)
{
	struct conn *c = r->c;

	if (close)
		c->close_after = 1;
	req_deny_record(r, status, code, reason);
	/* Done before the write: a write that fails closes the connection,
	 * which then frees r (from any state, R_AUDIT included). */
	r->state = R_DONE;
	send_error(r, status, code, reason, retry_after);
	if (!c->closing && c->out_pending == 0)
		req_done(c);
}

static const char *
code_for(int status)
{
	switch (status) {
	case 408: return "request_timeout";
	case 413: return "payload_too_large";
	case 431: return "headers_too_large";
	default: return "bad_request";
	}
}

/* ---- checks on the head: target, method, identity, media type ---- */

static int
check_target(struct req *r)
{
	const char *t = r->http.target, *q, *fn;
	size_t plen, flen;

	/* absolute-form, authority-form and asterisk-form are refused. */
	if (t[0] != '/')
		return 400;
	q = strchr(t, '?');
	plen = q ? (size_t)(q - t) : strlen(t);
	r->path = arena_strndup(&r->arena, t, plen);
	r->query = q ? q + 1 : "";
	if (r->path == NULL)
		return 400;
	/* Ours are /json-api, /json-api/... and /xml-api/... (a fragment
	 * aside); everything else is no path of WHM's API. */
	flen = strcspn(r->path, "#");
	if (strncmp(r->path, "/json-api/", 10) != 0 &&
	    strncmp(r->path, "/xml-api/", 9) != 0 &&
	    !(flen == 9 && strncmp(r->path, "/json-api", 9) == 0))
		return 404;
	/* The raw target must already be canonical: WHM would decode,
	 * fold and strip a different spelling to some other function. */
	if (strncmp(r->path, "/json-api/", 10) != 0)
		return 400;
	fn = r->path + 10;
	if (!params_valid_function(fn) || strchr(t, '#'))
		return 400;
	r->function = fn;
	return 0;
}

static int
media_type_ok(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return 1;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	return (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) ||
	    (n == 24 && strncasecmp(ct, "application/octet-stream", 24) == 0);
}

struct refusal {
	int status;
	const char *code, *reason;
};

static int
refusal(struct refusal *f, int status, const char *code, const char *reason)
{
	f->status = status;
	f->code = code;
	f->reason = reason;
	return -1;
}

/* What can be decided from the head alone. Returns 0 to go on, or -1 with
 * the refusal in f. */
static int
head_checks(struct req *r, struct refusal *f)
{
	struct conn *c = r->c;
	struct auth_result ar;
	int st;

	if (c->srv->draining)
		return refusal(f, 503, "shutting_down", "whmgate is shutting down");
	if ((st = check_target(r)) != 0)
		return refusal(f, st, st == 404 ? "not_found" : "bad_request",
		    st == 404 ? "no such path" : "request target not accepted");
	if (r->http.method_id != HTTP_GET && r->http.method_id != HTTP_POST)
		return refusal(f, 405, "method_not_allowed", "only GET and POST");
	/* A certificate that did not verify identifies no one, and a key
	 * beside it does not make it good. */
	if (c->tls && c->tls->cert_presented && !c->tls->has_cert) {
		r->scheme = AUTH_CERT;
		return refusal(f, 401, "unauthenticated",
		    "client certificate not trusted");
	}
	if (auth_check(r->conf, r->http.authorization,
	    c->tls && c->tls->has_cert ? c->tls->fp : NULL, c->family, c->addr,
	    (int64_t)time(NULL), &ar) == -1) {
		r->client = ar.client;
		r->scheme = ar.scheme;
		return refusal(f, ar.status, ar.code, ar.reason);
	}
	r->client = ar.client;
	r->scheme = ar.scheme;
	if (r->http.method_id == HTTP_POST &&
	    (!media_type_ok(r->http.content_type) || r->http.content_encoding))
		return refusal(f, 415, "unsupported_media_type",
		    "body must be application/x-www-form-urlencoded");
	return 0;
}

/* ---- the upstream leg ---- */

/* The head is built when WHM's arrives but goes out with the first piece
 * of body (one write, one segment for a small answer); until then a
 * failure can still be answered with a clean 502. */
static void
on_up_head(void *arg, int status, const char *ctype, long long clen)
{
	struct req *r = arg;
	struct conn *c = r->c;
	struct buf *h = &r->head;

	if (c->srv->draining)
		c->close_after = 1;     /* this connection ends with the answer */
	h->len = 0;
	/* Built by hand: this runs for every call and printf showed. */
	buf_adds(h, "HTTP/1.1 ");
	buf_addu(h, (unsigned)status);
	buf_addc(h, ' ');
	buf_adds(h, status_text(status));
	if (ctype && *ctype) {
		buf_adds(h, "\r\nContent-Type: ");
		buf_adds(h, ctype);
	}
	buf_adds(h, "\r\nX-Request-Id: ");
	buf_adds(h, r->id);
	buf_adds(h, "\r\n");
	if (clen >= 0) {
		buf_adds(h, "Content-Length: ");
		buf_addu(h, (unsigned long long)clen);
		buf_adds(h, "\r\n");
	} else if (r->http.minor >= 1) {
		buf_adds(h, "Transfer-Encoding: chunked\r\n");
		r->chunked = 1;
	} else {
		c->close_after = 1;     /* the end of the body is the close */
	}
	if (c->close_after)
		buf_adds(h, "Connection: close\r\n");
	buf_adds(h, "\r\n");
	r->status = status;
}

/* A chunk's size line, "<n in hex>\r\n", into size; returns its length. */
static size_t
chunk_line(char size[24], size_t n)
{
	return (size_t)snprintf(size, 24, "%zx\r\n", n);
}

/* Writes a piece of body (framed if chunked), the head first if it is
 * still waiting. 0, or -1 when the client is gone. */
static int
relay(struct req *r, const char *p, size_t n)
{
	struct conn *c = r->c;
	char size[24];
	int rc;

	if (!r->head_sent) {
		r->head_sent = 1;
		if (r->chunked) {
			if (n)
				buf_add(&r->head, size, chunk_line(size, n));
			buf_add(&r->head, p, n);
			buf_adds(&r->head, n ? "\r\n" : "0\r\n\r\n");
		} else {
			buf_add(&r->head, p, n);
		}
		rc = cork_add(c, r->head.p, r->head.len, NULL, 0, NULL, 0);
		buf_fini(&r->head);
		return rc;
	}
	if (!r->chunked)
		return cork_add(c, p, n, NULL, 0, NULL, 0);
	if (n == 0)
		return cork_add(c, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
	return cork_add(c, size, chunk_line(size, n), p, n, "\r\n", 2);
}

static int
on_up_data(void *arg, const char *p, size_t n)
{
	struct req *r = arg;
	struct conn *c = r->c;

	/* Backpressure: leave the piece with curl until the client has
	 * taken most of what is queued. */
	if (c->out_pending + c->cork.len > OUT_HIGH) {
		if (!r->paused) {
			r->paused = 1;
			timer_set(c, T_WRITE,
			    (uint64_t)r->conf->limits.idle_timeout_ms);
		}
		return 1;
	}
	outcome_feed(&r->oc, p, n);
	r->relayed += n;
	if (relay(r, p, n) == -1) {
		/* The client is gone; conn_close cancels the transfer (from
		 * inside curl's callback, upstream defers the cleanup). */
		conn_close(c, "write failed");
	}
	return 0;
}

static void
on_up_done(void *arg, const struct upstream_result *res)
{
	struct req *r = arg;
	struct conn *c = r->c;

	r->up = NULL;
	r->state = R_DONE;
	if (res->err_status)
		metrics_upstream_error(res->kind);
	if (res->err_status && !r->head_sent) {
		log_warn("request %s: upstream %s: %s", r->id, res->kind,
		    res->detail);
		buf_fini(&r->head);
		req_response_record(r, res->err_status, res, res->err_code);
		send_error(r, res->err_status, res->err_code,
		    res->err_status == 504 ? "WHM did not answer in time" :
		    "WHM is unavailable", 0);
	} else if (res->err_status) {
		/* The head is out: the only honest signal left is a cut. */
		log_warn("request %s: WHM failed after the response began: %s",
		    r->id, res->detail);
		req_response_record(r, r->status, res, "upstream_reset");
		cork_flush(c);          /* what WHM did send, as far as it goes */
		conn_close(c, "upstream failed mid-body");
		return;
	} else {
		outcome_finish(&r->oc);
		/* The end of the body (and the head, for an empty one). */
		if ((r->chunked || !r->head_sent) && relay(r, NULL, 0) == -1) {
			/* The client is gone before the end reached it. */
			req_response_record(r, 499, res, "client_closed");
			conn_close(c, "write failed");
			return;
		}
		req_response_record(r, r->status, res, NULL);
	}
	/* The answer is complete: what was gathered goes now, and the
	 * request is done once it is on the wire. */
	if (cork_flush(c) == -1) {
		conn_close(c, "write failed");
		return;
	}
	if (!c->closing && c->out_pending == 0)
		req_done(c);
}

static const struct upstream_ops up_ops = { on_up_head, on_up_data, on_up_done };

/* The request record is durable (or failed): forward, or refuse. */
static void
on_durable(void *arg, int ok)
{
	struct req *r = arg;
	struct upstream_call call;
	int nomem;
	struct buf url;

	if (r->c == NULL) {
		/* The client left while the record was written. */
		if (ok)
			req_response_record(r, 499, NULL, "client_closed");
		else
			req_deny_record(r, 499, "audit_unavailable",
			    "the audit trail cannot be written");
		req_free(r);
		return;
	}
	if (!ok) {
		req_refuse(r, 503, "audit_unavailable",
		    "the audit trail cannot be written", 0, 0);
		return;
	}
	buf_init(&url);
	/* -1 from any of these (out of memory) means no call */
	nomem = buf_adds(&url, r->conf->upstream.base) |
	    buf_adds(&url, "/json-api/") | buf_adds(&url, r->function);
	memset(&call, 0, sizeof(call));
	call.request_id = r->id;
	if (r->http.method_id == HTTP_GET) {
		nomem |= buf_addc(&url, '?') |
		    buf_add(&url, r->upbody.p, r->upbody.len);
	} else {
		call.body = r->upbody.p ? r->upbody.p : "";
		call.body_len = r->upbody.len;
	}
	call.url = url.p;
	r->state = R_UPSTREAM;
	r->t_up = time_ms();
	if (outcome_init(&r->oc) == 0)
		/* Only batch and uapi_cpanel need anything from data. */
		r->oc.skip_data = r->call.kind == CALL_PLAIN ||
		    r->call.kind == CALL_CPANEL;
	if (nomem || r->oc.h == NULL ||
	    (r->up = upstream_start(r->srv->up, r->conf, r->client, &call,
	    &up_ops, r)) == NULL) {
		r->state = R_DONE;
		req_response_record(r, 502, NULL, "cannot start the upstream call");
		send_error(r, 502, "upstream_unavailable", "WHM is unavailable", 0);
	}
	buf_fini(&url);
}

/* ---- checks on the whole message: rate, parameters, policy ---- */

static void
req_message(struct req *r)
{
	const struct client *cl = r->client;
	struct decision d;
	const char *why = NULL;
	double wait;

	if (cl->has_rate && (wait = rate_take(cl)) > 0) {
		req_refuse(r, 429, "rate_limited", "rate limit exceeded", 0, wait);
		return;
	}
	if (params_parse(&r->arena, &r->call.params, r->query, strlen(r->query),
	    &why) == -1)
		goto bad;
	if (r->http.body.len) {
		if (!params_body_ok(r->http.body.p, r->http.body.len)) {
			why = "raw CR, LF or NUL in the body";
			goto bad;
		}
		if (params_parse(&r->arena, &r->call.params, r->http.body.p,
		    r->http.body.len, &why) == -1)
			goto bad;
	}
	if (call_parse(&r->arena, &r->call, r->function, &why) == -1)
		goto bad;
	r->have_call = 1;
	if (policy_check(cl, &r->call, &d) == -1) {
		r->rule = d.rule;
		req_refuse(r, d.status, d.code, d.reason, 0, 0);
		return;
	}
	r->rule = d.rule;
	if (cl->max_inflight) {
		if (inflight_take(cl) == -1) {
			req_refuse(r, 429, "too_many_inflight",
			    "too many calls in flight", 0, 1);
			return;
		}
		r->counted_inflight = 1;
	}
	if (call_encode(&r->call, &r->upbody) == -1) {
		req_refuse(r, 503, "audit_unavailable", "out of memory", 0, 0);
		return;
	}
	{
		struct audit_event ev;
		event_init(r, &ev, "request");
		ev.with_params = 1;
		ev.decision = 1;
		ev.rule = r->rule;
		ev.ms = -1;
		r->state = R_AUDIT;
		if (audit_record(r->srv->audit, r->srv->sink, &ev, on_durable, r) == -1) {
			r->state = R_READ;
			req_refuse(r, 503, "audit_unavailable",
			    "the audit trail cannot be written", 0, 0);
		}
	}
	return;
bad:
	req_refuse(r, 400, "bad_request", why, 0, 0);
}

/* ---- reading ---- */

/* Called when the request's response is fully written. */
static void
req_done(struct conn *c)
{
	struct req *r = c->req;

	c->req = NULL;
	if (r)
		req_free(r);
	if (c->closing)
		return;
	if (c->cork.len == 0)
		buf_fini(&c->cork);     /* an idle connection holds no buffer */
	if (c->close_after || c->srv->draining) {
		/* Half-close and drain what the client still sends, so the
		 * kernel does not answer it with a reset that would destroy
		 * our response in flight. */
		c->lingering = 1;
		c->in.len = c->in_off = 0;
		if (c->tls) {
			struct buf out;
			buf_init(&out);
			tls_close_notify(c->tls, &out);
			if (out.len)
				raw_write(c, out.p, out.len, NULL, 0, NULL, 0);
			buf_fini(&out);
		}
		if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, NULL) != 0) {
			conn_close(c, "shutdown failed");
			return;
		}
		timer_set(c, T_LINGER, LINGER_MS);
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
		return;
	}
	if (c->in.len > c->in_off)
		timer_set(c, T_HEADER, (uint64_t)c->srv->conf->limits.header_timeout_ms);
	else
		timer_set(c, T_IDLE, (uint64_t)c->srv->conf->limits.idle_timeout_ms);
	conn_feed(c);
}

static void
conn_feed(struct conn *c)
{
	struct req *r;
	enum http_event ev;
	size_t used;

	while (!c->closing && !c->lingering) {
		if (c->req == NULL) {
			if (c->in.len == c->in_off)
				break;
			if ((c->req = req_new(c)) == NULL) {
				conn_close(c, "out of memory");
				return;
			}
			if (c->timer_kind != T_HEADER)
				timer_set(c, T_HEADER,
				    (uint64_t)c->req->conf->limits.header_timeout_ms);
		}
		r = c->req;
		if (r->state != R_READ)
			break;
		ev = http_feed(&c->hp, c->in.p + c->in_off, c->in.len - c->in_off,
		    &used);
		c->in_off += used;
		if (ev == HEV_MORE)
			break;
		if (ev == HEV_ERROR) {
			req_refuse(r, c->hp.status, code_for(c->hp.status),
			    c->hp.reason, 1, 0);
			return;
		}
		if (ev == HEV_HEAD) {
			struct refusal f;
			if (head_checks(r, &f) == -1) {
				/* Without a body the message is complete and
				 * the connection can stay; with one, whmgate
				 * answers before reading it, so it closes. */
				if (r->http.has_body || r->http.upgrade ||
				    http_feed(&c->hp, "", 0, &used) != HEV_DONE ||
				    !r->http.keep_alive)
					c->close_after = 1;
				req_refuse(r, f.status, f.code, f.reason,
				    c->close_after || c->srv->draining, 0);
				return;
			}
			/* Reading the body: each pause is bounded. */
			timer_set(c, T_IDLE, (uint64_t)r->conf->limits.idle_timeout_ms);
			continue;
		}
		/* HEV_DONE. Reading goes on, so a client that leaves is
		 * noticed (499); bytes it pipelines wait in c->in. */
		uv_timer_stop(&c->timer);
		c->timer_kind = T_NONE;
		if (!r->http.keep_alive)
			c->close_after = 1;
		req_message(r);
		return;
	}
	if (c->closing || c->lingering)
		return;
	if (c->req == NULL)
		in_compact(c);
	/* While a request runs, hold at most IN_CAP pipelined bytes. */
	if (c->req && c->req->state != R_READ && c->in.len - c->in_off > IN_CAP)
		uv_read_stop((uv_stream_t *)&c->tcp);
	else
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Drops consumed bytes from the front of c->in; frees a large buffer
 * that is empty, so idle connections stay small. */
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
	if (out.len && cork_flush(c) == 0)
		raw_write(c, out.p, out.len, NULL, 0, NULL, 0);
	buf_fini(&out);
	return rc;
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;
	struct req *r = c->req;
	int rc;

	if (c->closing)
		return;
	if (n > 0 && c->lingering) {
		c->linger_bytes += (size_t)n;
		if (c->linger_bytes > LINGER_BYTES)
			conn_close(c, "lingering close");
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
		if (!c->lingering && r && r->state == R_READ &&
		    http_eof(&c->hp) == HEV_ERROR) {
			req_deny_record(r, 400, "bad_request",
			    "connection closed mid-request");
		}
		conn_close(c, n == UV_EOF ? "closed by client" : uv_strerror((int)n));
		return;
	}
	if (n == 0)
		return;
	if (r == NULL && c->timer_kind == T_IDLE)
		timer_set(c, T_HEADER, (uint64_t)c->srv->conf->limits.header_timeout_ms);
	else if (r && r->state == R_READ && c->timer_kind == T_IDLE)
		timer_set(c, T_IDLE, (uint64_t)r->conf->limits.idle_timeout_ms);
	conn_feed(c);
}

static void
on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;
	struct req *r = c->req;

	if (c->closing)
		return;
	switch (c->timer_kind) {
	case T_HEADER:
	case T_IDLE:
		if (r && r->state == R_READ) {
			req_refuse(r, 408, "request_timeout",
			    "request not received in time", 1, 0);
			return;
		}
		conn_close(c, "idle");
		return;
	case T_WRITE:
		conn_close(c, "client stopped reading");
		return;
	case T_LINGER:
	case T_NONE:
		conn_close(c, "lingering close done");
		return;
	}
}

/* ---- accept and close ---- */

static void
on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct server *s = c->srv;

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
	server_conn_closed(s);
}

static void
conn_close(struct conn *c, const char *why)
{
	struct req *r = c->req;
	struct server *s = c->srv;

	if (c->closing)
		return;
	c->closing = 1;
	cork_unlink(c);
	log_debug("connection %s:%d closed: %s", c->ip, c->port, why);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	server_count_conn(-1);
	c->req = NULL;
	if (r) {
		switch (r->state) {
		case R_AUDIT:
			r->c = NULL;     /* on_durable frees it */
			break;
		case R_UPSTREAM: {
			/* What WHM had sent so far, for the record. */
			struct upstream_result res;
			memset(&res, 0, sizeof(res));
			res.status = r->head_sent ? r->status : 0;
			res.bytes = r->relayed;
			res.ms = time_ms() - r->t_up;
			/* Cut at the shutdown deadline, or the client left. */
			req_response_record(r, 499, &res, s->draining ?
			    "shutdown_deadline" : "client_closed");
			req_free(r);
			break;
		}
		case R_READ:
		case R_DONE:
			req_free(r);
			break;
		}
	}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_closed);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

int
conn_accept(struct server *s, uv_stream_t *ls)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	struct listener *l;
	int len = sizeof(ss);

	if (c == NULL)
		return -1;
	c->srv = s;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
		c->handles = 1;
		uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)(void (*)(void))free);
		return -1;
	}
	uv_timer_init(s->loop, &c->timer);
	c->timer.data = c;
	c->handles = 2;
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		c->family = ss.ss_family;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			memcpy(c->addr, &sin->sin_addr, 4);
			c->port = ntohs(sin->sin_port);
			inet_ntop(AF_INET, &sin->sin_addr, c->ip, sizeof(c->ip));
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			memcpy(c->addr, &sin6->sin6_addr, 16);
			c->port = ntohs(sin6->sin6_port);
			inet_ntop(AF_INET6, &sin6->sin6_addr, c->ip, sizeof(c->ip));
			/* A v4-mapped peer is checked as IPv4. */
			if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
				c->family = AF_INET;
				memcpy(c->addr, c->addr + 12, 4);
				inet_ntop(AF_INET, c->addr, c->ip, sizeof(c->ip));
			}
		}
	}
	http_parser_init(&c->hp, (size_t)s->conf->limits.max_header_bytes,
	    (size_t)s->conf->limits.max_body_bytes);
	buf_init(&c->in);
	buf_init(&c->cork);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	server_count_conn(1);
	l = ls->data;
	if (l->ctx && ((c->tls = calloc(1, sizeof(*c->tls))) == NULL ||
	    tls_conn_init(c->tls, l->ctx) == -1)) {
		log_err("TLS: cannot set up a connection");
		free(c->tls);
		c->tls = NULL;
		conn_close(c, "TLS set-up failed");
		return -1;
	}
	timer_set(c, T_HEADER, (uint64_t)s->conf->limits.header_timeout_ms);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	return 0;
}

void
conn_close_all(struct server *s)
{
	struct conn *c, *next;

	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_close(c, "shutdown deadline");
	}
}
