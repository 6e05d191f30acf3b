/* req.c - one request: checks, records, the call to WHM, the answer.
 *
 * Ownership and lifecycle:
 * - A connection creates a request (req_new) and ends it with req_end()
 *   or req_abort(); req_free() is the one teardown.
 * - A request owns its arena (every string of it), its parser output, its
 *   upstream call, its outcome reader and a reference to the conf it began
 *   with, and a copy of its peer (address, TLS identity): its records
 *   carry them even after the connection is gone.
 * - A request whose connection closes while its request record is being
 *   written is detached (r->c = NULL) and freed by on_durable; during the
 *   call to WHM, the call is cancelled and the request freed at once.
 * - Every request ends with exactly one deny record, or one request and
 *   one response record: deny_record() and response_record() are the only
 *   writers, and r->recorded guards them. A response record waits until
 *   the answer is on the wire (req_end), so a client that never takes it
 *   is recorded as 499, not as WHM's 200.
 * - Every path ends in conn_request_done(), once: the connection reaps.
 *
 * The way of one request: req_head (target, method, identity, source,
 * media type) -> req_message (rate, parameters, policy, in-flight) ->
 * request record -> on_durable -> upstream -> on_up_head / on_up_data ->
 * on_up_done -> (answer on the wire) req_end: response record. A refusal
 * at any step leaves through refuse(). */
#include "req.h"
#include "audit.h"
#include "auth.h"
#include "conf.h"
#include "conn.h"
#include "http.h"
#include "limits.h"
#include "log.h"
#include "metrics.h"
#include "outcome.h"
#include "params.h"
#include "policy.h"
#include "server.h"
#include "target.h"
#include "upstream.h"
#include "util.h"

#include <math.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#define OUT_HIGH (256 * 1024)   /* leave WHM's bytes with curl above this */

enum req_state { R_READ, R_AUDIT, R_UPSTREAM, R_DONE };

struct req {
	struct conn *c;            /* NULL once the connection is gone */
	struct server *srv;
	struct conf *conf;
	struct http_parser *hp;    /* the connection's, while attached */
	struct conn_peer peer;
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
	struct decision cand;      /* the candidate's, when it differs */
	int cand_differs;
	struct upstream_req *up;
	struct buf upbody;
	int head_sent, chunked, paused, recorded, counted_inflight;
	int status;
	double t_up;               /* when the upstream call started */
	struct buf head;           /* response head waiting for the body */
	unsigned long long relayed; /* body bytes passed to the connection */
	/* The response record, written once the answer is on the wire. */
	int end_pending, end_status, end_up_status;
	const char *end_error;
	double end_up_ms;
	unsigned long long end_up_bytes;
	/* Last, and big (3.6 KB): req_new zeroes what is above it and
	 * outcome_init sets it up when the call goes out (oc.h NULL until
	 * then). The assertion below keeps it last. */
	struct outcome oc;
};

_Static_assert(offsetof(struct req, oc) + sizeof(struct outcome) ==
    sizeof(struct req), "struct req: oc must stay the last member");

/* ---- records ---- */

static void
event_init(struct req *r, struct audit_event *ev, const char *type)
{
	memset(ev, 0, sizeof(*ev));
	ev->conf = r->conf;
	ev->type = type;
	ev->id = r->id;
	ev->client_id = r->client ? r->client->id : NULL;
	ev->auth = auth_scheme_name(r->scheme);
	ev->ip = r->peer.ip[0] ? r->peer.ip : NULL;
	ev->port = r->peer.port;
	ev->method = r->http.method;
	ev->path = r->path;
	ev->function = r->function;
	ev->whm_user = r->client ? r->client->whm_user : NULL;
	ev->call = r->have_call ? &r->call : NULL;
	ev->decision = -1;
	if (r->cand_differs) {
		ev->cand = 1;
		ev->cand_allow = r->cand.allow;
		ev->cand_rule = r->cand.rule;
		ev->cand_code = r->cand.code;
		ev->cand_reason = r->cand.allow ? NULL : r->cand.reason;
	}
	ev->up_status = -1;
	ev->ms = time_ms() - r->t0;
}

/* The decision label of SPEC section 9 for a refusal's status. */
static const char *
decision_label(int status)
{
	switch (status) {
	case 401: return "unauthenticated";
	case 403: return "forbidden";
	case 429: return "rate_limited";
	case 499:
	case 503: return "unavailable";
	default: return "bad_request";
	}
}

/* The function label: the allow entry a call was checked against
 * (cpanel:M::f and uapi_cpanel:M::f targets included), else its function;
 * metrics.c maps names no client allows to "other". */
static const char *
function_label(const struct req *r)
{
	return r->have_call && r->call.rule_name ? r->call.rule_name :
	    r->function;
}

static void
deny_record(struct req *r, int status, const char *code, const char *reason)
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
	metrics_request(r->conf, ev.client_id, function_label(r),
	    decision_label(status), ev.ms / 1e3);
}

static void
inflight_put(struct req *r)
{
	if (!r->counted_inflight)
		return;
	r->counted_inflight = 0;
	limits_inflight_put(r->client);
}

static void
response_record(struct req *r, int status, int up_status, double up_ms,
    unsigned long long up_bytes, const char *error)
{
	struct audit_event ev;

	if (r->recorded)
		return;
	r->recorded = 1;
	r->end_pending = 0;
	inflight_put(r);
	event_init(r, &ev, "response");
	ev.status = status;
	ev.outcome = r->oc.h ? &r->oc : NULL;
	ev.up_status = up_status;
	ev.up_ms = up_ms;
	ev.up_bytes = up_bytes;
	ev.up_error = error;
	if (audit_record(r->srv->audit, r->srv->sink, &ev, NULL, NULL) == -1)
		log_warn("audit: response record of %s not queued", r->id);
	metrics_request(r->conf, ev.client_id, function_label(r), "allow",
	    ev.ms / 1e3);
}

/* What the response record will say once the answer is on the wire. */
static void
end_set(struct req *r, int status, const struct upstream_result *res,
    const char *error)
{
	r->end_pending = 1;
	r->end_status = status;
	r->end_up_status = res ? res->status : 0;
	r->end_up_ms = res ? res->ms : 0;
	r->end_up_bytes = res ? res->bytes : 0;
	r->end_error = error;
}

/* ---- life ---- */

static _Thread_local unsigned char id_seed[8];
static _Thread_local uint32_t id_count;

struct req *
req_new(struct conn *c, void *owner, const struct conn_peer *peer,
    struct http_parser *hp)
{
	struct server *s = owner;
	struct req *r = malloc(sizeof(*r));
	unsigned char rnd[12];

	if (r == NULL)
		return NULL;
	memset(r, 0, offsetof(struct req, oc));
	r->oc.h = NULL;
	r->c = c;
	r->srv = s;
	r->conf = conf_ref(s->conf);
	r->hp = hp;
	r->peer = *peer;
	arena_init(&r->arena);
	r->http.arena = &r->arena;
	buf_init(&r->upbody);
	buf_init(&r->head);
	r->t0 = time_ms();
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
	http_begin(hp, &r->http);
	s->inflight++;
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

int
req_reading(const struct req *r)
{
	return r->state == R_READ;
}

void
req_end(struct req *r)
{
	if (r->end_pending)
		response_record(r, r->end_status, r->end_up_status,
		    r->end_up_ms, r->end_up_bytes, r->end_error);
	req_free(r);
}

void
req_abort(struct req *r, const char *why)
{
	size_t unsent = r->c ? conn_backlog(r->c) : 0;

	r->c = NULL;
	r->hp = NULL;
	switch (r->state) {
	case R_AUDIT:
		return;                 /* on_durable frees it */
	case R_UPSTREAM:
		/* What WHM had sent so far, for the record. */
		response_record(r, 499, r->head_sent ? r->status : 0,
		    time_ms() - r->t_up, r->relayed, why);
		break;
	case R_DONE:
		if (!r->end_pending)
			break;
		/* All of the answer went to the socket before the close
		 * (the client read it and left at once): it is delivered. */
		if (unsent == 0) {
			response_record(r, r->end_status, r->end_up_status,
			    r->end_up_ms, r->end_up_bytes, r->end_error);
			break;
		}
		/* Part of it never left: the record says 499 and about what
		 * the client took. */
		response_record(r, 499, r->end_up_status, r->end_up_ms,
		    r->relayed > unsent ? r->relayed - unsent : 0, why);
		break;
	case R_READ:
		break;
	}
	req_free(r);
}

/* ---- refusals ---- */

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

/* Sends whmgate's own error answer. A write that fails leaves the
 * connection broken; it closes in its next step. */
static void
send_error(struct req *r, int status, const char *code, const char *reason,
    double retry_after)
{
	struct conn *c = r->c;
	struct buf head, body;

	buf_init(&head);
	buf_init(&body);
	error_body(r, code, reason, &body);
	buf_printf(&head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nX-Request-Id: %s\r\n", status,
	    http_status_text(status), body.len, r->id);
	if (status == 401)
		buf_adds(&head, "WWW-Authenticate: Bearer realm=\"whmgate\"\r\n");
	if (retry_after > 0)
		buf_printf(&head, "Retry-After: %.0f\r\n", ceil(retry_after));
	if (conn_closes_after(c))
		buf_adds(&head, "Connection: close\r\n");
	buf_adds(&head, "\r\n");
	r->status = status;
	/* An answer to HEAD has no body (RFC 9110, 9.3.2): a keep-alive
	 * client would read it as the next answer. */
	if (r->http.method_id == HTTP_HEAD)
		body.len = 0;
	conn_send(c, head.p, head.len, body.p, body.len, NULL, 0);
	buf_fini(&head);
	buf_fini(&body);
}

/* The one door for refusals: the deny record, the answer, the end. */
static void
refuse(struct req *r, int status, const char *code, const char *reason,
    int close, double retry_after)
{
	if (close)
		conn_close_after(r->c);
	deny_record(r, status, code, reason);
	r->state = R_DONE;
	send_error(r, status, code, reason, retry_after);
	conn_request_done(r->c, CONN_KEEP);
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

void
req_bad_framing(struct req *r, int status, const char *reason)
{
	refuse(r, status, code_for(status), reason, 1, 0);
}

void
req_timeout(struct req *r)
{
	refuse(r, 408, "request_timeout", "request not received in time", 1, 0);
}

void
req_peer_closed(struct req *r)
{
	if (r->hp && http_eof(r->hp) == HEV_ERROR)
		deny_record(r, 400, "bad_request",
		    "connection closed mid-request");
}

/* ---- checks on the head: target, method, identity, media type ---- */

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
	const struct conn_peer *p = &r->peer;
	struct auth_result ar;
	int st;

	if (r->srv->draining)
		return refusal(f, 503, "shutting_down", "whmgate is shutting down");
	if ((st = target_parse(&r->arena, r->http.target, &r->path, &r->query,
	    &r->function)) != 0)
		return refusal(f, st, st == 404 ? "not_found" : "bad_request",
		    st == 404 ? "no such path" : "request target not accepted");
	if (r->http.method_id != HTTP_GET && r->http.method_id != HTTP_POST)
		return refusal(f, 405, "method_not_allowed", "only GET and POST");
	/* A certificate that did not verify identifies no one, and a key
	 * beside it does not make it good. */
	if (p->tls && p->cert_presented && !p->has_cert) {
		r->scheme = AUTH_CERT;
		return refusal(f, 401, "unauthenticated",
		    "client certificate not trusted");
	}
	if (auth_check(r->conf, r->http.authorization,
	    p->tls && p->has_cert ? p->fp : NULL, p->family, p->addr,
	    (int64_t)time(NULL), &ar) == -1) {
		r->client = ar.client;
		r->scheme = ar.scheme;
		return refusal(f, ar.status, ar.code, ar.reason);
	}
	r->client = ar.client;
	r->scheme = ar.scheme;
	if (r->http.method_id == HTTP_POST &&
	    (!target_media_ok(r->http.content_type) || r->http.content_encoding))
		return refusal(f, 415, "unsupported_media_type",
		    "body must be application/x-www-form-urlencoded");
	return 0;
}

void
req_head(struct req *r)
{
	struct refusal f;
	size_t used;

	if (head_checks(r, &f) == 0)
		return;                 /* the body is read next */
	/* Without a body the message is complete and the connection can
	 * stay; with one, whmgate answers before reading it, so it closes
	 * (body bytes must never be read as a request). */
	if (r->http.has_body || r->http.upgrade ||
	    http_feed(r->hp, "", 0, &used) != HEV_DONE || !r->http.keep_alive)
		conn_close_after(r->c);
	refuse(r, f.status, f.code, f.reason, 0, 0);
}

/* ---- the upstream leg ---- */

/* The head is built when WHM's arrives but goes out with the first piece
 * of body (one write, one segment for a small answer); until then a
 * failure can still be answered with a clean 502. */
static void
on_up_head(void *arg, int status, const char *ctype, long long clen)
{
	struct req *r = arg;
	struct buf *h = &r->head;

	if (r->srv->draining)
		conn_close_after(r->c);  /* this connection ends with the answer */
	h->len = 0;
	/* Built by hand: this runs for every call and printf showed. */
	buf_adds(h, "HTTP/1.1 ");
	buf_addu(h, (unsigned)status);
	buf_addc(h, ' ');
	buf_adds(h, http_status_text(status));
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
		conn_close_after(r->c);  /* the end of the body is the close */
	}
	if (conn_closes_after(r->c))
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

/* Hands a piece of body (framed if chunked) to the connection, the head
 * first if it is still waiting; n == 0 ends the body. 0, or -1 when the
 * client is gone. */
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
		rc = conn_gather(c, r->head.p, r->head.len, NULL, 0, NULL, 0);
		buf_fini(&r->head);
		return rc;
	}
	if (!r->chunked)
		return conn_gather(c, p, n, NULL, 0, NULL, 0);
	if (n == 0)
		return conn_gather(c, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
	return conn_gather(c, size, chunk_line(size, n), p, n, "\r\n", 2);
}

static int
on_up_data(void *arg, const char *p, size_t n)
{
	struct req *r = arg;

	outcome_feed(&r->oc, p, n);
	r->relayed += n;
	/* A client that is gone holds WHM back; its connection closes in
	 * its next step and req_abort records the 499. */
	if (relay(r, p, n) == -1)
		return 1;
	/* Back-pressure: WHM waits until the client has taken most of what
	 * is queued (req_drained resumes). */
	if (conn_backlog(r->c) > OUT_HIGH) {
		r->paused = 1;
		return 1;
	}
	return 0;
}

void
req_drained(struct req *r)
{
	if (!r->paused || r->up == NULL)
		return;
	r->paused = 0;
	upstream_resume(r->up);
}

static void
on_up_done(void *arg, const struct upstream_result *res)
{
	struct req *r = arg;

	r->up = NULL;
	r->state = R_DONE;
	inflight_put(r);                /* WHM has answered */
	if (res->err_status)
		metrics_upstream_error(res->kind);
	if (res->err_status && !r->head_sent) {
		log_warn("request %s: upstream %s: %s", r->id, res->kind,
		    res->detail);
		buf_fini(&r->head);
		end_set(r, res->err_status, res, res->error ? res->error :
		    res->err_code);
		send_error(r, res->err_status, res->err_code,
		    res->err_status == 504 ? "WHM did not answer in time" :
		    "WHM is unavailable", 0);
		conn_request_done(r->c, CONN_KEEP);
		return;
	}
	if (res->err_status) {
		/* The head is out: the only honest signal left is a cut. */
		log_warn("request %s: WHM failed after the response began: %s",
		    r->id, res->detail);
		response_record(r, r->status, res->status, res->ms, res->bytes,
		    "upstream_reset");
		conn_request_done(r->c, CONN_CUT);
		return;
	}
	outcome_finish(&r->oc);
	end_set(r, r->status, res, NULL);
	/* The end of the body (and the head, for an empty one); a client
	 * that is gone is recorded by req_abort. */
	if (r->chunked || !r->head_sent)
		relay(r, NULL, 0);
	conn_request_done(r->c, CONN_KEEP);
}

static const struct upstream_ops up_ops = { on_up_head, on_up_data, on_up_done };

/* The request record is durable (or failed): forward, or refuse. */
static void
on_durable(void *arg, int ok)
{
	struct req *r = arg;
	struct upstream_call call;
	struct buf url;
	int nomem;

	if (r->c == NULL) {
		/* The client left while the record was written. */
		if (ok)
			response_record(r, 499, 0, 0, 0, "client_closed");
		else
			deny_record(r, 499, "audit_unavailable",
			    "the audit trail cannot be written");
		req_free(r);
		return;
	}
	if (!ok) {
		refuse(r, 503, "audit_unavailable",
		    "the audit trail cannot be written", 0, 0);
		return;
	}
	buf_init(&url);
	/* -1 from any of these (out of memory) means no call */
	nomem = buf_adds(&url, "/json-api/") | buf_adds(&url, r->function);
	memset(&call, 0, sizeof(call));
	call.request_id = r->id;
	if (r->http.method_id == HTTP_GET) {
		nomem |= buf_addc(&url, '?') |
		    buf_add(&url, r->upbody.p, r->upbody.len);
	} else {
		call.body = r->upbody.p ? r->upbody.p : "";
		call.body_len = r->upbody.len;
	}
	call.target = url.p;
	r->state = R_UPSTREAM;
	r->t_up = time_ms();
	/* What the reader looks for depends on the kind of call: plain
	 * calls skip data, the others read their inner verdicts. */
	if (outcome_init(&r->oc) == 0)
		outcome_set_kind(&r->oc, r->call.kind == CALL_BATCH ?
		    OUTCOME_BATCH : r->call.kind == CALL_CPANEL ? OUTCOME_CPANEL :
		    r->call.kind == CALL_UAPI ? OUTCOME_UAPI : OUTCOME_PLAIN);
	if (nomem || r->oc.h == NULL ||
	    (r->up = upstream_start(r->srv->up, r->conf, r->client, &call,
	    &up_ops, r)) == NULL) {
		/* No byte went to WHM: a clean 502, and the connection
		 * goes on with its next request. */
		r->state = R_DONE;
		inflight_put(r);
		end_set(r, 502, NULL, "cannot start the upstream call");
		send_error(r, 502, "upstream_unavailable", "WHM is unavailable", 0);
		conn_request_done(r->c, CONN_KEEP);
	} else {
		/* The call holds its own copy of what goes out, and the
		 * parameters live in the arena: the raw body and the encoded
		 * one are not held for as long as WHM takes. */
		buf_fini(&r->upbody);
		buf_fini(&r->http.body);
	}
	buf_fini(&url);
}

/* ---- checks on the whole message: rate, parameters, policy ---- */

void
req_message(struct req *r)
{
	const struct client *cl = r->client;
	struct params_limits lim = {
		(size_t)r->conf->limits.max_params,
		(size_t)r->conf->limits.max_batch_calls
	};
	struct audit_event ev;
	struct decision d;
	const char *why = NULL;
	int status = 400;            /* 413 when a count limit is passed */
	int rc;
	double wait;

	if (!r->http.keep_alive)
		conn_close_after(r->c);
	if (cl->has_rate) {
		switch (limits_rate_take(r->conf, cl, time_ms() / 1000.0, &wait)) {
		case LIMITS_OK:
			break;
		case LIMITS_OVER:
			refuse(r, 429, "rate_limited", "rate limit exceeded", 0,
			    wait);
			return;
		case LIMITS_UNKNOWN:
			/* Fail closed: a call the limits cannot count is
			 * not let through. */
			refuse(r, 429, "rate_limited",
			    "rate limit state unavailable", 0, 1);
			return;
		}
	}
	if (params_parse_limited(&r->arena, &r->call.params, r->query,
	    strlen(r->query), &lim, &status, &why) == -1)
		goto bad;
	if (r->http.body.len) {
		if (!params_body_ok(r->http.body.p, r->http.body.len)) {
			status = 400;
			why = "raw CR, LF or NUL in the body";
			goto bad;
		}
		if (params_parse_limited(&r->arena, &r->call.params,
		    r->http.body.p, r->http.body.len, &lim, &status, &why) == -1)
			goto bad;
	}
	if (call_parse_limited(&r->arena, &r->call, r->function, &lim,
	    &status, &why) == -1)
		goto bad;
	r->have_call = 1;
	/* Section 12: the candidate is decided on the same call, recorded
	 * and counted where it differs; the decision taken is allow's. */
	rc = policy_check(cl, &r->call, &d);
	if (policy_check_candidate(cl, &r->call, &r->cand) != 1 &&
	    policy_differs(&d, &r->cand)) {
		r->cand_differs = 1;
		metrics_candidate(r->conf, cl->id, d.allow);
	}
	if (rc == -1) {
		r->rule = d.rule;
		refuse(r, d.status, d.code, d.reason, 0, 0);
		return;
	}
	r->rule = d.rule;
	if (cl->max_inflight) {
		if (limits_inflight_take(r->conf, cl) != LIMITS_OK) {
			refuse(r, 429, "too_many_inflight",
			    "too many calls in flight", 0, 1);
			return;
		}
		r->counted_inflight = 1;
	}
	if (call_encode(&r->call, &r->upbody) == -1) {
		refuse(r, 503, "audit_unavailable", "out of memory", 0, 0);
		return;
	}
	event_init(r, &ev, "request");
	ev.with_params = 1;
	ev.decision = 1;
	ev.rule = r->rule;
	ev.ms = -1;
	r->state = R_AUDIT;
	if (audit_record(r->srv->audit, r->srv->sink, &ev, on_durable, r) == -1) {
		refuse(r, 503, "audit_unavailable",
		    "the audit trail cannot be written", 0, 0);
	}
	return;
bad:
	refuse(r, status, code_for(status), why, 0, 0);
}
