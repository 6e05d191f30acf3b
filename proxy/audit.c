/* audit.c - see audit.h.
 *
 * Ownership: a record's JSON is built on the caller's thread into an entry
 * (malloc'd) and queued. The writer thread owns the file, seq and the chain
 * state: it alone closes each record with ,"seq":N,"prev":"<hex>"} so the
 * order in the file is the order of the chain. Entries with a callback go
 * back to the loop through the done list and a uv_async; the loop frees them.
 *
 * Faults: when a write or sync fails, the file is cut back to its last good
 * size (no torn line), the chain state is rewound, records that had a
 * waiting request are failed at once (the request answers 503 and writes a
 * deny record instead), and the rest wait in memory, bounded. Every second
 * the writer tries again, starting with an audit-fault recovery record. */
#define _GNU_SOURCE
#include "audit.h"
#include "conf.h"
#include "log.h"
#include "outcome.h"
#include "params.h"
#include "syslog.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#define AUDIT_QUEUE_MAX 100000         /* records waiting during a fault */
#define AUDIT_QUEUE_BYTES (64u << 20)
#define AUDIT_BATCH 256

struct entry {
	struct entry *next;
	char *body;          /* the record without its closing brace; in the
	                      * same allocation, after the struct */
	size_t len;
	audit_cb cb;
	void *arg;
	struct audit_sink *sink;   /* the loop the callback runs on */
	int ok;
};

/* Where the callbacks of one event loop are handed back: the writer
 * appends to the list and wakes the loop. Owned by the audit; the async
 * handle is closed by its loop (audit_sink_stop) before the loop ends. */
struct audit_sink {
	struct audit *a;
	struct audit_sink *next;
	uv_async_t async;
	uv_idle_t idle;            /* hands pending records over once per pass */
	struct entry *phead, *ptail;  /* appended this pass; loop thread only */
	struct entry *head, *tail; /* done, callbacks to run; under a->mu */
	int stopped;               /* the handles are closed */
	struct gen *gen;           /* reused for every record; loop thread only */
};

struct audit {
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cond;
	uv_cond_t idle;          /* signalled when the queue ran empty */
	char instance[256];      /* for system records; under mu */
	char *path;
	enum fsync_mode fsync;
	unsigned char *key;      /* hmac_key_file contents, or NULL */
	struct syslog_out *syslog;   /* optional copy */
	size_t keylen;
	/* under mu */
	struct entry *head, *tail;
	size_t nqueued, qbytes;
	struct audit_sink *sinks;
	int stop, reopen, faulted, writing;
	atomic_int faulted_hint;   /* faulted, for lock-free readers */
	unsigned long long records, failures, dropped;
	/* writer thread only */
	int fd;
	off_t good_size;
	unsigned long long seq;
	unsigned char last[32];
	int dirty;
	double last_sync;
	double fault_at;         /* when the last write attempt failed */
	char fault_reason[128];
};

/* ---- hashing ---- */

static void
chain_hash(const struct audit *a, const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 32;

	if (a->key)
		HMAC(EVP_sha256(), a->key, (int)a->keylen, p, n, out, &len);
	else
		sha256(p, n, out);
}

/* ---- redaction ---- */

static const char *const secret_words[] = {
	"pass", "secret", "token", "key", "hash", "session", "private",
	"passphrase", "auth", NULL
};

int
audit_redacted_name(const struct conf *c, const char *base)
{
	char low[128];
	size_t i, n = strlen(base);

	/* Lowered once, then plain strstr: strcasestr sets up its two-way
	 * search for every word, which showed in profiles. */
	if (n < sizeof(low)) {
		for (i = 0; i <= n; i++)
			low[i] = base[i] >= 'A' && base[i] <= 'Z' ?
			    (char)(base[i] + 'a' - 'A') : base[i];
		for (i = 0; secret_words[i]; i++)
			if (strstr(low, secret_words[i]))
				return 1;
	} else {
		for (i = 0; secret_words[i]; i++)
			if (strcasestr(base, secret_words[i]))
				return 1;
	}
	for (i = 0; c && i < c->audit.nredact; i++)
		if (strcmp(base, c->audit.redact[i]) == 0)
			return 1;
	return 0;
}

/* A value holding something shaped like a whmgate key, or a configured
 * WHM token, is a secret whatever its name. */
static int
secret_value(const struct conf *c, const char *v)
{
	const char *p = v;
	size_t i;

	while ((p = strstr(p, "whmg_")) != NULL) {
		if (strspn(p + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") >= 16)
			return 1;
		p += 5;
	}
	for (i = 0; c && i < c->nclients; i++)
		if (c->clients[i].whm_token && c->clients[i].whm_token[0] &&
		    strstr(v, c->clients[i].whm_token))
			return 1;
	return 0;
}

/* ---- JSON generation ---- */

/* A generator and the buffer it prints into. yajl's own buffer spent a
 * checked call on every comma, colon and quote (a third of a record's
 * cost); here, while there is room, a piece is one copy. */
struct gen {
	yajl_gen g;
	struct buf out;
	int failed;                /* out could not grow: the record is lost */
};

static void
gen_print(void *ctx, const char *s, size_t n)
{
	struct gen *gn = ctx;
	struct buf *b = &gn->out;

	if (b->len + n < b->cap) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
	} else if (buf_add(b, s, n) == -1) {
		gn->failed = 1;
	}
}

static struct gen *
gen_new(void)
{
	struct gen *gn = calloc(1, sizeof(*gn));

	if (gn == NULL)
		return NULL;
	buf_init(&gn->out);
	if ((gn->g = yajl_gen_alloc(NULL)) == NULL ||
	    !yajl_gen_config(gn->g, yajl_gen_print_callback, gen_print, gn)) {
		if (gn->g)
			yajl_gen_free(gn->g);
		free(gn);
		return NULL;
	}
	return gn;
}

static void
gen_free(struct gen *gn)
{
	if (gn == NULL)
		return;
	yajl_gen_free(gn->g);
	buf_fini(&gn->out);
	free(gn);
}

/* For the next record. */
static void
gen_restart(struct gen *gn)
{
	yajl_gen_reset(gn->g, NULL);
	gn->out.len = 0;
	gn->failed = 0;
}

/* What a record is generated with: the trail (for the HMAC key), the conf
 * the request runs under (redaction, tokens) and the instance name. The
 * conf is the request's own reference, so a reload on another thread
 * cannot free it mid-record. */
struct rec {
	struct audit *a;
	const struct conf *c;
	const char *instance;
};

/* Every string is checked to be UTF-8 here (parameter values come from
 * the client), with a fast path for ASCII; one that is not has its
 * non-ASCII bytes replaced, so a record is never lost over a string.
 * (yajl's own check refused such a string silently, leaving a key
 * without its value.) */
static void
gen_s(yajl_gen g, const char *s)
{
	size_t n = strlen(s), i;
	char *copy;

	if (utf8_valid(s, n)) {
		yajl_gen_string(g, (const unsigned char *)s, n);
		return;
	}
	if ((copy = malloc(n + 1)) == NULL) {
		yajl_gen_string(g, (const unsigned char *)"?", 1);
		return;
	}
	for (i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
	yajl_gen_string(g, (const unsigned char *)copy, n);
	free(copy);
}

/* Strings that come from the client unchecked (method, path) may hold
 * anything: keep printable ASCII, replace the rest, cap the length. */
static void
gen_raw(yajl_gen g, const char *s, size_t max)
{
	char tmp[1024];
	size_t i;

	if (max >= sizeof(tmp))
		max = sizeof(tmp) - 1;
	for (i = 0; s[i] && i < max; i++)
		tmp[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	tmp[i] = '\0';
	gen_s(g, tmp);
}

static void
gen_kv(yajl_gen g, const char *k, const char *v)
{
	gen_s(g, k);
	if (v)
		gen_s(g, v);
	else
		yajl_gen_null(g);
}

/* Numbers without printf (yajl_gen_integer is a sprintf; these run a
 * few times for every record). */
static void
gen_int(yajl_gen g, long long v)
{
	char tmp[22];
	size_t n = 0;

	if (v < 0)
		tmp[n++] = '-';
	n += fmt_u64(tmp + n, v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v);
	yajl_gen_number(g, tmp, n);
}

/* Milliseconds with three decimals: k, then v as 12.345. */
static void
gen_ms(yajl_gen g, const char *k, double v)
{
	/* (not a number, negative or absurd: 0 or capped at 10^12 ms) */
	unsigned long long us = v > 0 ? (unsigned long long)((v < 1e12 ? v :
	    1e12) * 1000 + 0.5) : 0;
	char tmp[32];
	size_t n;

	n = fmt_u64(tmp, us / 1000);
	tmp[n] = '.';
	tmp[n + 1] = (char)('0' + us / 100 % 10);
	tmp[n + 2] = (char)('0' + us / 10 % 10);
	tmp[n + 3] = (char)('0' + us % 10);
	gen_s(g, k);
	yajl_gen_number(g, tmp, n + 4);
}

static void
gen_value(const struct rec *x, yajl_gen g, const char *base, const char *v)
{
	unsigned char h[32];
	char out[12 + 65];

	if (!audit_redacted_name(x->c, base) && !secret_value(x->c, v)) {
		gen_s(g, v);
		return;
	}
	if (x->a->key == NULL) {
		gen_s(g, "[REDACTED]");
		return;
	}
	/* With a key, an auditor holding it can check a known value. */
	chain_hash(x->a, v, strlen(v), h);
	memcpy(out, "hmac-sha256:", 12);
	hex_encode(h, 32, out + 12);
	gen_s(g, out);
}

static void
gen_params(const struct rec *x, yajl_gen g, const struct params *ps, int skip_cmd,
    int add_version)
{
	size_t i;

	yajl_gen_map_open(g);
	if (add_version)
		gen_kv(g, "api.version", "1");
	for (i = 0; i < ps->n; i++) {
		if (skip_cmd && strcmp(ps->v[i].base, "command") == 0)
			continue;
		if (secret_value(x->c, ps->v[i].name)) {
			/* A secret sent as a name: keep the slot, not it. */
			char name[40];
			snprintf(name, sizeof(name), "[REDACTED-NAME-%zu]", i);
			gen_s(g, name);
			gen_s(g, "[REDACTED]");
			continue;
		}
		gen_s(g, ps->v[i].name);
		gen_value(x, g, ps->v[i].base, ps->v[i].value);
	}
	yajl_gen_map_close(g);
}

/* The affected resource (PCI DSS 10.2.2): first of these present. */
static const char *
target_of(const struct params *ps)
{
	static const char *const names[] = { "cpanel.user",
		"cpanel_jsonapi_user", "user", "username", "domain", "zone",
		NULL };
	const char *v;
	size_t i;

	for (i = 0; names[i]; i++)
		if ((v = params_get(ps, names[i])) != NULL)
			return v;
	return NULL;
}

static void
gen_target(const struct rec *x, yajl_gen g, const struct params *ps)
{
	const char *t = target_of(ps);

	gen_s(g, "target");
	if (t == NULL)
		yajl_gen_null(g);
	else
		gen_value(x, g, "target", t);
}

static void
gen_result(yajl_gen g, int r)
{
	if (r < 0)
		yajl_gen_null(g);
	else
		gen_int(g, r);
}

static void
gen_whm(const struct rec *x, yajl_gen g, const struct audit_event *ev)
{
	const struct call *c = ev->call;
	const struct outcome *o = ev->outcome;
	size_t i;

	gen_s(g, "whm");
	yajl_gen_map_open(g);
	gen_s(g, "function");
	if (ev->function && secret_value(x->c, ev->function))
		gen_s(g, "[REDACTED]");
	else if (ev->function)
		gen_raw(g, ev->function, 128);
	else
		yajl_gen_null(g);
	gen_kv(g, "user", ev->whm_user);
	if (c) {
		gen_target(x, g, &c->params);
		if (ev->with_params) {
			gen_s(g, "params");
			gen_params(x, g, &c->params, c->kind == CALL_BATCH,
			    c->add_api_version);
		}
		if (c->kind != CALL_PLAIN) {
			gen_s(g, "calls");
			yajl_gen_array_open(g);
			for (i = 0; i < c->nsubs; i++) {
				yajl_gen_map_open(g);
				gen_kv(g, "function", c->subs[i].function);
				gen_target(x, g, &c->subs[i].params);
				gen_s(g, "params");
				gen_params(x, g, &c->subs[i].params, 0, 0);
				gen_s(g, "result");
				gen_result(g, o && i < o->nsubs ?
				    o->sub_result[i] : -1);
				yajl_gen_map_close(g);
			}
			if (c->kind == CALL_CPANEL || c->kind == CALL_UAPI) {
				yajl_gen_map_open(g);
				gen_kv(g, "function", c->function);
				gen_kv(g, "module", c->module);
				gen_kv(g, "func", c->func);
				gen_s(g, "user");
				if (c->cuser)
					gen_value(x, g, "user", c->cuser);
				else
					yajl_gen_null(g);
				yajl_gen_map_close(g);
			}
			yajl_gen_array_close(g);
		}
	}
	if (o) {
		gen_s(g, "result");
		gen_result(g, c && c->kind == CALL_UAPI ? o->uapi_status :
		    o->result);
		gen_s(g, "reason");
		if (o->has_reason)
			gen_value(x, g, "reason", o->reason);
		else
			yajl_gen_null(g);
		if (o->failed) {
			gen_s(g, "body");
			gen_s(g, "not JSON");
		}
	}
	yajl_gen_map_close(g);
}

static void
gen_head(const struct rec *x, yajl_gen g, const char *type)
{
	char ts[32];

	time_rfc3339(ts, sizeof(ts));
	yajl_gen_map_open(g);
	gen_kv(g, "ts", ts);
	gen_kv(g, "instance", x->instance);
	gen_kv(g, "type", type);
}

static void
gen_event(const struct rec *x, yajl_gen g, const struct audit_event *ev)
{
	gen_head(x, g, ev->type);
	gen_kv(g, "id", ev->id);
	gen_s(g, "client");
	yajl_gen_map_open(g);
	gen_kv(g, "id", ev->client_id);
	gen_kv(g, "ip", ev->ip);
	gen_s(g, "port");
	gen_int(g, ev->port);
	gen_kv(g, "auth", ev->auth);
	yajl_gen_map_close(g);
	gen_s(g, "http");
	yajl_gen_map_open(g);
	gen_s(g, "method");
	if (ev->method)
		gen_raw(g, ev->method, 32);
	else
		yajl_gen_null(g);
	gen_s(g, "path");
	if (ev->path && secret_value(x->c, ev->path))
		gen_s(g, "[REDACTED]");
	else if (ev->path)
		gen_raw(g, ev->path, 512);
	else
		yajl_gen_null(g);
	if (ev->status) {
		gen_s(g, "status");
		gen_int(g, ev->status);
	}
	yajl_gen_map_close(g);
	if (ev->function || ev->call)
		gen_whm(x, g, ev);
	if (ev->decision >= 0) {
		gen_s(g, "decision");
		yajl_gen_map_open(g);
		gen_s(g, "allow");
		yajl_gen_bool(g, ev->decision);
		gen_kv(g, "rule", ev->rule);
		gen_kv(g, "code", ev->code);
		gen_kv(g, "reason", ev->reason);
		if (ev->cand) {
			gen_s(g, "candidate");
			yajl_gen_map_open(g);
			gen_s(g, "allow");
			yajl_gen_bool(g, ev->cand_allow);
			gen_kv(g, "rule", ev->cand_rule);
			gen_kv(g, "code", ev->cand_code);
			gen_kv(g, "reason", ev->cand_reason);
			yajl_gen_map_close(g);
		}
		yajl_gen_map_close(g);
	}
	if (ev->up_status >= 0) {
		gen_s(g, "upstream");
		yajl_gen_map_open(g);
		gen_s(g, "status");
		if (ev->up_status > 0)
			gen_int(g, ev->up_status);
		else
			yajl_gen_null(g);
		gen_ms(g, "ms", ev->up_ms);
		gen_s(g, "bytes");
		gen_int(g, (long long)ev->up_bytes);
		gen_kv(g, "error", ev->up_error);
		yajl_gen_map_close(g);
	}
	if (ev->ms >= 0)
		gen_ms(g, "ms", ev->ms);
}

/* Copies the generated map (still open: the writer closes it with seq and
 * prev) into a new entry. */
static struct entry *
entry_new(const struct gen *gn, audit_cb cb, void *arg)
{
	const char *out = gn->out.p;
	size_t len = gn->out.len;
	struct entry *e;

	if (gn->failed || len == 0)
		return NULL;
	if ((e = malloc(sizeof(*e) + len)) == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->body = (char *)(e + 1);
	memcpy(e->body, out, len);
	e->len = len;
	e->cb = cb;
	e->arg = arg;
	return e;
}

/* Appends e to the writer's queue (under mu). -1 when it cannot wait
 * there: stopping, a faulted trail for a record someone waits on, or the
 * bound reached; the caller then owns e. */
static int
queue_locked(struct audit *a, struct entry *e)
{
	/* A request waiting for durability cannot be served while the trail
	 * is faulted; other records wait, bounded. */
	if (a->stop || (a->faulted && e->cb) || a->nqueued >= AUDIT_QUEUE_MAX ||
	    a->qbytes + e->len >= AUDIT_QUEUE_BYTES) {
		a->failures++;
		if (!e->cb)
			a->dropped++;
		return -1;
	}
	/* The writer only waits on an empty queue; mid-write, it looks at
	 * the queue again before it waits. */
	if (a->head == NULL && !a->writing)
		uv_cond_signal(&a->cond);
	if (a->tail)
		a->tail->next = e;
	else
		a->head = e;
	a->tail = e;
	e->next = NULL;
	a->nqueued++;
	a->qbytes += e->len;
	return 0;
}

static void
entry_free(struct entry *e)
{
	free(e);
}

/* Straight to the writer's queue, from any thread; e is freed if it
 * cannot wait there. */
static int
queue_entry(struct audit *a, struct entry *e)
{
	int rc;

	uv_mutex_lock(&a->mu);
	rc = queue_locked(a, e);
	uv_mutex_unlock(&a->mu);
	if (rc)
		entry_free(e);
	return rc;
}

/* System records. */
static int
enqueue(struct audit *a, const struct gen *gn)
{
	struct entry *e = entry_new(gn, NULL, NULL);

	return e ? queue_entry(a, e) : -1;
}

/* On a sink's loop, once per pass: its records go to the writer with one
 * lock and at most one wake-up, however many the pass produced. */
static void
sink_flush(struct audit_sink *s)
{
	struct audit *a = s->a;
	struct entry *e, *next, *failed = NULL;

	if (s->phead == NULL)
		return;
	uv_mutex_lock(&a->mu);
	for (e = s->phead; e; e = next) {
		next = e->next;
		if (queue_locked(a, e) == -1) {
			if (e->cb) {
				e->next = failed;
				failed = e;
			} else {
				entry_free(e);
			}
		}
	}
	uv_mutex_unlock(&a->mu);
	s->phead = s->ptail = NULL;
	/* Requests whose record could not be queued learn it now. */
	for (e = failed; e; e = next) {
		next = e->next;
		e->cb(e->arg, 0);
		entry_free(e);
	}
}

static void
on_idle(uv_idle_t *h)
{
	uv_idle_stop(h);
	sink_flush(h->data);
}

int
audit_record(struct audit *a, struct audit_sink *sink,
    const struct audit_event *ev, audit_cb cb, void *arg)
{
	struct gen *gn, *own = NULL;
	struct entry *e;
	struct rec x;

	/* Refused at once while the trail is faulted: the request answers
	 * 503 without waiting. */
	if (cb && atomic_load(&a->faulted_hint))
		return -1;
	/* The loop's own generator, or one for this record only. */
	if ((gn = sink ? sink->gen : NULL) != NULL)
		gen_restart(gn);
	else if ((gn = own = gen_new()) == NULL)
		return -1;
	x.a = a;
	x.c = ev->conf;
	x.instance = ev->conf ? ev->conf->instance : NULL;
	gen_event(&x, gn->g, ev);
	e = entry_new(gn, cb, arg);
	gen_free(own);
	if (e == NULL)
		return -1;
	e->sink = sink;
	if (sink == NULL || sink->stopped) {
		/* No loop to call back on: only records nobody waits on. */
		if (cb) {
			entry_free(e);
			return -1;
		}
		return queue_entry(a, e);
	}
	if (sink->ptail)
		sink->ptail->next = e;
	else {
		sink->phead = e;
		uv_idle_start(&sink->idle, on_idle);
	}
	sink->ptail = e;
	return 0;
}

static struct gen *
system_gen(struct audit *a, const char *event, va_list ap)
{
	struct gen *gn = gen_new();
	const char *k, *v;
	char instance[256];
	struct rec x;
	yajl_gen g;

	if (gn == NULL)
		return NULL;
	g = gn->g;
	x.a = a;
	x.c = NULL;
	uv_mutex_lock(&a->mu);
	snprintf(instance, sizeof(instance), "%s", a->instance);
	uv_mutex_unlock(&a->mu);
	x.instance = instance;
	gen_head(&x, g, "system");
	gen_kv(g, "event", event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		gen_kv(g, k, v);
	}
	return gn;
}

int
audit_system(struct audit *a, const char *event, ...)
{
	struct gen *gn;
	va_list ap;
	int rc;

	va_start(ap, event);
	gn = system_gen(a, event, ap);
	va_end(ap);
	if (gn == NULL)
		return -1;
	rc = enqueue(a, gn);
	gen_free(gn);
	return rc;
}

/* For the writer: a system record that goes first, not to the queue. */
static struct entry *
system_entry(struct audit *a, const char *event, ...)
{
	struct entry *e;
	struct gen *gn;
	va_list ap;

	va_start(ap, event);
	gn = system_gen(a, event, ap);
	va_end(ap);
	if (gn == NULL)
		return NULL;
	e = entry_new(gn, NULL, NULL);
	gen_free(gn);
	return e;
}

/* ---- the writer thread ---- */

/* Hands e back to its loop (under a->mu); a record nobody waits on is
 * freed. */
static void
done_push(struct entry *e, int ok)
{
	struct audit_sink *s = e->sink;

	e->ok = ok;
	e->next = NULL;
	if (e->cb == NULL) {
		entry_free(e);
		return;
	}
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	if (!s->stopped)
		uv_async_send(&s->async);
}

/* The end of a line: ,"seq":N,"prev":"<64 hex>"}\n (at most 103 bytes). */
static size_t
tail_format(char *out, unsigned long long seq, const char *hex)
{
	size_t n = 7;

	memcpy(out, ",\"seq\":", 7);
	n += fmt_u64(out + n, seq);
	memcpy(out + n, ",\"prev\":\"", 9);
	memcpy(out + n + 9, hex, 64);
	memcpy(out + n + 73, "\"}\n", 3);
	return n + 76;
}

/* Closes each record with seq and prev and writes the batch. On failure
 * the file is cut back and the chain rewound; returns -1. */
static int
write_batch(struct audit *a, struct entry *batch, size_t n)
{
	struct iovec iov[AUDIT_BATCH * 2];
	struct tail { char s[112]; size_t n; } *tails;
	unsigned long long seq0 = a->seq;
	unsigned char last0[32];
	struct entry *e;
	struct buf line;
	size_t i = 0, total = 0, off;
	int waiting, sync_now;
	ssize_t w;
	char hex[65];
	int rc = 0;

	if ((tails = malloc(n * sizeof(*tails))) == NULL)
		return -1;
	memcpy(last0, a->last, 32);
	buf_init(&line);
	for (e = batch; e && i < n; e = e->next, i++) {
		hex_encode(a->last, 32, hex);
		a->seq++;
		tails[i].n = tail_format(tails[i].s, a->seq, hex);
		/* The chain covers the line's bytes without its newline. */
		line.len = 0;
		buf_add(&line, e->body, e->len);
		buf_add(&line, tails[i].s, tails[i].n - 1);
		chain_hash(a, line.p, line.len, a->last);
		iov[2 * i].iov_base = e->body;
		iov[2 * i].iov_len = e->len;
		iov[2 * i + 1].iov_base = tails[i].s;
		iov[2 * i + 1].iov_len = tails[i].n;
		total += e->len + tails[i].n;
	}
	/* writev may write part: continue from where it stopped. */
	off = 0;
	i = 0;
	while (off < total) {
		w = writev(a->fd, iov + i, (int)(2 * n - i));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(a->fault_reason, sizeof(a->fault_reason),
			    "write: %s", w < 0 ? strerror(errno) : "no progress");
			rc = -1;
			break;
		}
		off += (size_t)w;
		while (i < 2 * n && (size_t)w >= iov[i].iov_len) {
			w -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < 2 * n) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	/* fsync "always": a batch with a request waiting on it is synced
	 * before the request may go on (group commit: one fdatasync for the
	 * whole batch). A batch of only response/deny/system records holds
	 * no one up; it is synced with the next waiting batch or within
	 * 100 ms, like "interval", so one call costs one sync, not two. */
	for (e = batch, i = 0, waiting = 0; e && i < n; e = e->next, i++)
		waiting |= e->cb != NULL;
	sync_now = a->fsync == FSYNC_ALWAYS &&
	    (waiting || time_ms() - a->last_sync >= 100);
	if (rc == 0 && sync_now && fdatasync(a->fd) == -1) {
		snprintf(a->fault_reason, sizeof(a->fault_reason),
		    "fdatasync: %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0) {
		a->good_size += (off_t)total;
		if (sync_now) {
			a->last_sync = time_ms();
			a->dirty = 0;
		} else if (a->fsync != FSYNC_NEVER) {
			a->dirty = 1;
		}
		/* The copy goes out only once the file has the line. */
		for (e = batch, i = 0; a->syslog && e && i < n; e = e->next, i++) {
			line.len = 0;
			buf_add(&line, e->body, e->len);
			buf_add(&line, tails[i].s, tails[i].n - 1);
			syslog_send(a->syslog, line.p, line.len);
		}
		buf_fini(&line);
	} else {
		/* No torn line may stay: cut back to the last good line. */
		if (ftruncate(a->fd, a->good_size) == -1)
			log_err("audit: ftruncate %s: %s", a->path, strerror(errno));
		a->seq = seq0;
		memcpy(a->last, last0, 32);
	}
	buf_fini(&line);
	free(tails);
	return rc;
}

/* Reads the last line of an existing trail: seq and hash continue. A torn
 * last line (no newline) is cut; its hash is returned in torn_hex. */
static int
continue_chain(struct audit *a, char *torn_hex, struct buf *err)
{
	struct stat st;
	char *data = NULL, *end, *line;
	yajl_val v;
	unsigned char h[32];
	off_t size, start;
	ssize_t r;
	size_t n;

	torn_hex[0] = '\0';
	if (fstat(a->fd, &st) == -1) {
		buf_printf(err, "audit: fstat %s: %s", a->path, strerror(errno));
		return -1;
	}
	size = st.st_size;
	a->good_size = size;
	if (size == 0)
		return 0;
	/* Lines are short; the last 1 MiB holds the last line. */
	start = size > (1 << 20) ? size - (1 << 20) : 0;
	n = (size_t)(size - start);
	data = malloc(n + 1);
	if (data == NULL || (r = pread(a->fd, data, n, start)) != (ssize_t)n) {
		buf_printf(err, "audit: cannot read %s", a->path);
		free(data);
		return -1;
	}
	data[n] = '\0';
	end = data + n;
	if (end[-1] != '\n') {
		/* A torn line from a crash: cut it, keep its hash. */
		line = memrchr(data, '\n', n);
		line = line ? line + 1 : data;
		sha256(line, (size_t)(end - line), h);
		hex_encode(h, 32, torn_hex);
		a->good_size = start + (line - data);
		if (ftruncate(a->fd, a->good_size) == -1) {
			buf_printf(err, "audit: ftruncate %s: %s", a->path,
			    strerror(errno));
			free(data);
			return -1;
		}
		end = line;
	}
	if (end > data) {
		end--;                  /* the newline */
		*end = '\0';
		line = memrchr(data, '\n', (size_t)(end - data));
		line = line ? line + 1 : data;
		chain_hash(a, line, (size_t)(end - line), a->last);
		v = yajl_tree_parse(line, NULL, 0);
		if (v) {
			yajl_val s = yajl_tree_get(v, (const char *[]){ "seq",
			    NULL }, yajl_t_number);
			if (s && YAJL_IS_INTEGER(s))
				a->seq = (unsigned long long)YAJL_GET_INTEGER(s);
			yajl_tree_free(v);
		}
	}
	free(data);
	return 0;
}

static int
open_file(struct audit *a, struct buf *err)
{
	a->fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->fd == -1) {
		buf_printf(err, "audit: cannot open %s: %s", a->path,
		    strerror(errno));
		return -1;
	}
	/* One writer per trail: a second whmgate appending its own chain
	 * to the same file would break both. */
	if (flock(a->fd, LOCK_EX | LOCK_NB) == -1) {
		buf_printf(err, "audit: %s is in use by another process (%s)",
		    a->path, strerror(errno));
		close(a->fd);
		a->fd = -1;
		return -1;
	}
	return 0;
}

/* SIGUSR1: the old file was renamed; the new one chains from its last
 * line and counts seq from 1. */
static void
do_reopen(struct audit *a)
{
	unsigned char last[32];
	struct buf err;
	char torn[65];
	int old = a->fd;

	buf_init(&err);
	if (open_file(a, &err) == -1) {
		log_err("%s", err.p);
		a->fd = old;
		buf_fini(&err);
		return;
	}
	close(old);
	/* The chain goes on from our last line whatever the file holds; seq
	 * restarts at 1 in a new (empty) file and continues in one that was
	 * not rotated away. */
	memcpy(last, a->last, sizeof(last));
	a->seq = 0;
	if (continue_chain(a, torn, &err) == -1)
		log_err("%s", err.p ? err.p : "audit: cannot read the reopened file");
	memcpy(a->last, last, sizeof(last));
	buf_fini(&err);
	log_info("audit: reopened %s", a->path);
}

/* Takes up to AUDIT_BATCH records off the queue (under mu). */
static struct entry *
take_batch(struct audit *a, size_t *n)
{
	struct entry *batch = a->head, *e, *last = NULL;

	*n = 0;
	for (e = a->head; e && *n < AUDIT_BATCH - 1; e = e->next) {
		last = e;
		(*n)++;
		a->nqueued--;
		a->qbytes -= e->len;
	}
	if (last) {
		a->head = last->next;
		last->next = NULL;
		if (a->head == NULL)
			a->tail = NULL;
	}
	return batch;
}

/* After a failed write: waiting requests fail now; the other records go
 * back to the front of the queue in their order (under mu). */
static void
requeue(struct audit *a, struct entry *batch)
{
	struct entry *keep = NULL, *last = NULL, *e, *next;

	for (e = batch; e; e = next) {
		next = e->next;
		e->next = NULL;
		if (e->cb) {
			done_push(e, 0);
			continue;
		}
		if (last)
			last->next = e;
		else
			keep = e;
		last = e;
		a->nqueued++;
		a->qbytes += e->len;
	}
	if (keep) {
		last->next = a->head;
		if (a->head == NULL)
			a->tail = last;
		a->head = keep;
	}
}

static void
writer_main(void *arg)
{
	struct audit *a = arg;
	struct entry *batch, *rec, *e, *next;
	char dropped[24];
	size_t n;
	int rc, faulted;

	uv_mutex_lock(&a->mu);
	for (;;) {
		if (a->head == NULL && !a->stop && !a->reopen) {
			if (a->faulted)
				uv_cond_timedwait(&a->cond, &a->mu, 1000000000ull);
			else if (a->dirty)
				uv_cond_timedwait(&a->cond, &a->mu, 100000000ull);
			else
				uv_cond_wait(&a->cond, &a->mu);
		}
		if (a->reopen) {
			a->reopen = 0;
			uv_mutex_unlock(&a->mu);
			do_reopen(a);
			uv_mutex_lock(&a->mu);
		}
		/* interval: sync at least every 100 ms while there is news. */
		if (a->dirty && time_ms() - a->last_sync >= 100) {
			uv_mutex_unlock(&a->mu);
			if (fdatasync(a->fd) == -1)
				log_err("audit: fdatasync: %s", strerror(errno));
			a->last_sync = time_ms();
			uv_mutex_lock(&a->mu);
			a->dirty = 0;
		}
		if (a->head == NULL && (!a->faulted || a->stop))  {
			if (a->stop)
				break;
			continue;
		}
		if (a->faulted && a->stop) {
			a->dropped += a->nqueued;
			break;
		}
		/* While faulted, try again once a second, not per record. */
		if (a->faulted && time_ms() - a->fault_at < 1000) {
			uv_cond_timedwait(&a->cond, &a->mu, (uint64_t)((1000 -
			    (time_ms() - a->fault_at)) * 1e6) + 1);
			continue;
		}
		batch = take_batch(a, &n);
		rec = NULL;
		faulted = a->faulted;
		snprintf(dropped, sizeof(dropped), "%llu", a->dropped);
		a->writing = 1;
		uv_mutex_unlock(&a->mu);
		if (faulted) {
			/* Recovery starts with a record saying so; it also
			 * probes whether writing works again. (Built without
			 * mu: system records take it for the instance name.) */
			rec = system_entry(a, "audit-fault", "state",
			    "recovered", "error", a->fault_reason, "dropped",
			    dropped, NULL);
			if (rec) {
				rec->next = batch;
				batch = rec;
				n++;
			}
		}
		rc = batch ? write_batch(a, batch, n) : -1;
		uv_mutex_lock(&a->mu);
		a->writing = 0;
		if (rc == 0) {
			if (a->faulted)
				log_info("audit: writing %s again", a->path);
			a->faulted = 0;
			atomic_store(&a->faulted_hint, 0);
			a->dropped = 0;
			a->records += n;
			for (e = batch; e; e = next) {
				next = e->next;
				done_push(e, 1);
			}
		} else {
			if (!a->faulted)
				log_err("audit: %s: %s (refusing requests)",
				    a->path, a->fault_reason);
			a->faulted = 1;
			atomic_store(&a->faulted_hint, 1);
			a->fault_at = time_ms();
			a->failures++;
			if (rec) {
				batch = rec->next;
				entry_free(rec);
			}
			requeue(a, batch);
		}
		if (a->head == NULL || a->faulted)
			uv_cond_broadcast(&a->idle);
	}
	uv_cond_broadcast(&a->idle);
	uv_mutex_unlock(&a->mu);
	if (a->dirty)
		fdatasync(a->fd);
}

/* Runs the callbacks waiting in s; returns how many ran. */
static int
sink_drain(struct audit_sink *s)
{
	struct audit *a = s->a;
	struct entry *e, *next;
	int n = 0;

	uv_mutex_lock(&a->mu);
	e = s->head;
	s->head = s->tail = NULL;
	uv_mutex_unlock(&a->mu);
	for (; e; e = next, n++) {
		next = e->next;
		e->cb(e->arg, e->ok);
		entry_free(e);
	}
	return n;
}

/* On the loop: run the callbacks of records that are durable or failed. */
static void
on_async(uv_async_t *h)
{
	sink_drain(h->data);
}

struct audit_sink *
audit_sink_new(struct audit *a, uv_loop_t *loop)
{
	struct audit_sink *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->a = a;
	if (uv_async_init(loop, &s->async, on_async) != 0) {
		free(s);
		return NULL;
	}
	s->async.data = s;
	s->gen = gen_new();     /* without it, each record makes its own */
	uv_idle_init(loop, &s->idle);
	s->idle.data = s;
	/* Completions never keep a loop alive on their own. */
	uv_unref((uv_handle_t *)&s->async);
	uv_mutex_lock(&a->mu);
	s->next = a->sinks;
	a->sinks = s;
	uv_mutex_unlock(&a->mu);
	return s;
}

void
audit_sink_stop(struct audit_sink *s)
{
	/* Stopped first: a record added by a callback that sink_flush runs
	 * goes straight to the queue, not to a pending list nobody flushes. */
	uv_mutex_lock(&s->a->mu);
	s->stopped = 1;
	uv_mutex_unlock(&s->a->mu);
	sink_flush(s);
	uv_close((uv_handle_t *)&s->idle, NULL);
	uv_close((uv_handle_t *)&s->async, NULL);
	gen_free(s->gen);
	s->gen = NULL;
}

static int
read_key(struct audit *a, const char *file, struct buf *err)
{
	unsigned char tmp[4096];
	ssize_t n;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		buf_printf(err, "audit: cannot open %s: %s", file, strerror(errno));
		return -1;
	}
	n = read(fd, tmp, sizeof(tmp));
	close(fd);
	while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r'))
		n--;
	if (n <= 0) {
		buf_printf(err, "audit: %s is empty or unreadable", file);
		return -1;
	}
	a->key = malloc((size_t)n);
	if (a->key == NULL)
		return -1;
	memcpy(a->key, tmp, (size_t)n);
	a->keylen = (size_t)n;
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

struct audit *
audit_open(const struct conf *c, struct buf *err)
{
	struct audit *a = calloc(1, sizeof(*a));
	char torn[65];

	if (a == NULL)
		return NULL;
	snprintf(a->instance, sizeof(a->instance), "%s", c->instance);
	a->fd = -1;
	a->path = xstrdup(c->audit.file);
	a->fsync = c->audit.fsync;
	if (c->audit.hmac_key_file && read_key(a, c->audit.hmac_key_file,
	    err) == -1)
		goto fail;
	if (open_file(a, err) == -1 || continue_chain(a, torn, err) == -1)
		goto fail;
	if (c->audit.syslog &&
	    (a->syslog = syslog_open(c->audit.syslog, c->instance)) == NULL) {
		buf_printf(err, "audit: cannot start the syslog copy to %s",
		    c->audit.syslog);
		goto fail;
	}
	if (uv_mutex_init(&a->mu) || uv_cond_init(&a->cond) ||
	    uv_cond_init(&a->idle)) {
		buf_printf(err, "audit: cannot create locks");
		goto fail;
	}
	a->last_sync = time_ms();
	if (uv_thread_create(&a->thread, writer_main, a)) {
		buf_printf(err, "audit: cannot start the writer thread");
		goto fail;
	}
	audit_system(a, "start", "version", WHMGATE_VERSION, "config",
	    c->file, "config_digest", c->digest, "torn_line_sha256",
	    torn[0] ? torn : NULL, NULL);
	return a;
fail:
	if (a->fd != -1)
		close(a->fd);
	syslog_close(a->syslog);
	free(a->path);
	free(a->key);
	free(a);
	return NULL;
}

void
audit_close(struct audit *a, const char *stop_reason)
{
	struct audit_sink *s, *next;
	int ran;

	if (a == NULL)
		return;
	/* Requests still waiting for their record get their callbacks (and
	 * write their last records) before the stop record closes the file.
	 * The loops have ended: the callbacks run here, on this thread. */
	do {
		uv_mutex_lock(&a->mu);
		while ((a->head || a->writing) && !a->faulted)
			uv_cond_wait(&a->idle, &a->mu);
		uv_mutex_unlock(&a->mu);
		ran = 0;
		for (s = a->sinks; s; s = s->next)
			ran += sink_drain(s);
	} while (ran);
	if (stop_reason)
		audit_system(a, "stop", "reason", stop_reason[0] ? stop_reason :
		    NULL, NULL);
	uv_mutex_lock(&a->mu);
	a->stop = 1;
	uv_cond_signal(&a->cond);
	uv_mutex_unlock(&a->mu);
	uv_thread_join(&a->thread);
	syslog_close(a->syslog);
	/* Stopping on a trail that cannot be written: what waits is lost,
	 * and said so. */
	if (a->head) {
		struct entry *e, *en;
		unsigned long long lost = 0;
		for (e = a->head; e; e = en, lost++) {
			en = e->next;
			if (e->cb)
				done_push(e, 0);
			else {
				entry_free(e);
			}
		}
		a->head = a->tail = NULL;
		log_err("audit: %llu records could not be written before the stop",
		    lost);
	}
	for (s = a->sinks; s; s = s->next)
		sink_drain(s);
	for (s = a->sinks; s; s = next) {
		next = s->next;
		free(s);
	}
	close(a->fd);
	uv_mutex_destroy(&a->mu);
	uv_cond_destroy(&a->cond);
	uv_cond_destroy(&a->idle);
	free(a->path);
	if (a->key)
		OPENSSL_cleanse(a->key, a->keylen);
	free(a->key);
	free(a);
}

void
audit_set_conf(struct audit *a, const struct conf *c)
{
	uv_mutex_lock(&a->mu);
	snprintf(a->instance, sizeof(a->instance), "%s", c->instance);
	uv_mutex_unlock(&a->mu);
}

int
audit_writable(struct audit *a)
{
	int ok;

	uv_mutex_lock(&a->mu);
	ok = !a->faulted;
	uv_mutex_unlock(&a->mu);
	return ok;
}

void
audit_reopen(struct audit *a)
{
	uv_mutex_lock(&a->mu);
	a->reopen = 1;
	uv_cond_signal(&a->cond);
	uv_mutex_unlock(&a->mu);
}

unsigned long long
audit_records_total(struct audit *a)
{
	unsigned long long n;

	uv_mutex_lock(&a->mu);
	n = a->records;
	uv_mutex_unlock(&a->mu);
	return n;
}

unsigned long long
audit_failures_total(struct audit *a)
{
	unsigned long long n;

	uv_mutex_lock(&a->mu);
	n = a->failures;
	uv_mutex_unlock(&a->mu);
	return n;
}

/* ---- verification ---- */

static int
verify_fail(const char *file, unsigned long line, const char *why)
{
	printf("BROKEN: %s:%lu: %s\n", file, line, why);
	return -1;
}

int
audit_verify(char **files, int nfiles, const char *keyfile)
{
	struct audit a;
	struct buf err;
	unsigned char last[32];
	char hex[65], *line = NULL;
	unsigned long long prev_seq = 0, total = 0;
	unsigned long lineno;
	size_t cap = 0;
	ssize_t n;
	int have_last = 0, i, rc = 0;
	FILE *f;

	memset(&a, 0, sizeof(a));
	buf_init(&err);
	if (keyfile && read_key(&a, keyfile, &err) == -1) {
		fprintf(stderr, "%s\n", err.p ? err.p : "cannot read key");
		buf_fini(&err);
		return -1;
	}
	buf_fini(&err);
	for (i = 0; i < nfiles && rc == 0; i++) {
		if ((f = fopen(files[i], "r")) == NULL) {
			rc = verify_fail(files[i], 0, strerror(errno));
			break;
		}
		lineno = 0;
		while (rc == 0 && (n = getline(&line, &cap, f)) != -1) {
			yajl_val v, p, s;
			lineno++;
			if (n == 0 || line[n - 1] != '\n') {
				rc = verify_fail(files[i], lineno,
				    "incomplete last line (torn write)");
				break;
			}
			line[--n] = '\0';
			if (memchr(line, '\0', (size_t)n) ||
			    (v = yajl_tree_parse(line, NULL, 0)) == NULL) {
				rc = verify_fail(files[i], lineno, "not a JSON object");
				break;
			}
			p = yajl_tree_get(v, (const char *[]){ "prev", NULL },
			    yajl_t_string);
			s = yajl_tree_get(v, (const char *[]){ "seq", NULL },
			    yajl_t_number);
			if (p == NULL || s == NULL || !YAJL_IS_INTEGER(s))
				rc = verify_fail(files[i], lineno,
				    "no prev or seq field");
			else if (have_last && (hex_encode(last, 32, hex),
			    strcmp(hex, p->u.string) != 0))
				rc = verify_fail(files[i], lineno, "prev does not "
				    "match the previous line (edited, deleted, "
				    "inserted or reordered)");
			else if (lineno > 1 && (unsigned long long)
			    YAJL_GET_INTEGER(s) != prev_seq + 1)
				rc = verify_fail(files[i], lineno,
				    "seq is not the previous seq + 1");
			if (s && YAJL_IS_INTEGER(s))
				prev_seq = (unsigned long long)YAJL_GET_INTEGER(s);
			yajl_tree_free(v);
			chain_hash(&a, line, (size_t)n, last);
			have_last = 1;
			total++;
		}
		fclose(f);
	}
	free(line);
	if (a.key) {
		OPENSSL_cleanse(a.key, a.keylen);
		free(a.key);
	}
	if (rc == 0) {
		hex_encode(last, 32, hex);
		printf("OK: %llu records in %d file(s), chain intact; last "
		    "line hash %s\n", total, nfiles, have_last ? hex : "-");
	}
	return rc;
}
