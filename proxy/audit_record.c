/* audit_record.c - see audit_record.h.
 *
 * Ownership: a generator (struct audit_gen) owns the yajl handle and the
 * buffer a record is printed into; the caller owns the generator and
 * reads the bytes before the next build. Nothing here keeps a pointer to
 * an event, a conf or a call after it returns, and nothing takes a lock:
 * a generator is used by one thread at a time (audit.c keeps one per
 * event loop).
 *
 * What is recorded: every string is valid UTF-8 in the line (a string
 * that is not has its non-ASCII bytes replaced); parameters and values
 * that name or hold a secret are redacted (SPEC section 7), as hashes
 * under the trail's HMAC key when there is one. */
#define _GNU_SOURCE
#include "audit_record.h"
#include "conf.h"
#include "outcome.h"
#include "params.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

/* ---- the key and the chain hash ---- */

void
audit_hash(const struct audit_key *k, const void *p, size_t n,
    unsigned char out[32])
{
	unsigned int len = 32;

	if (k && k->p)
		HMAC(EVP_sha256(), k->p, (int)k->len, p, n, out, &len);
	else
		sha256(p, n, out);
}

int
audit_key_read(struct audit_key *k, const char *file, struct buf *err)
{
	unsigned char tmp[4096];
	ssize_t n;
	int fd;

	k->p = NULL;
	k->len = 0;
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
	k->p = malloc((size_t)n);
	if (k->p == NULL) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		buf_printf(err, "audit: out of memory");
		return -1;
	}
	memcpy(k->p, tmp, (size_t)n);
	k->len = (size_t)n;
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

void
audit_key_fini(struct audit_key *k)
{
	if (k->p) {
		OPENSSL_cleanse(k->p, k->len);
		free(k->p);
	}
	k->p = NULL;
	k->len = 0;
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
int
audit_secret_value(const struct conf *c, const char *v)
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
struct audit_gen {
	yajl_gen g;
	struct buf out;
	int failed;                /* out could not grow: the record is lost */
};

static void
gen_print(void *ctx, const char *s, size_t n)
{
	struct audit_gen *gn = ctx;
	struct buf *b = &gn->out;

	if (b->len + n < b->cap) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
	} else if (buf_add(b, s, n) == -1) {
		gn->failed = 1;
	}
}

struct audit_gen *
audit_gen_new(void)
{
	struct audit_gen *gn = calloc(1, sizeof(*gn));

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

void
audit_gen_free(struct audit_gen *gn)
{
	if (gn == NULL)
		return;
	yajl_gen_free(gn->g);
	buf_fini(&gn->out);
	free(gn);
}

/* For the next record. */
static void
gen_restart(struct audit_gen *gn)
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
	const struct audit_key *k;
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

	if (!audit_redacted_name(x->c, base) && !audit_secret_value(x->c, v)) {
		gen_s(g, v);
		return;
	}
	if (x->k == NULL || x->k->p == NULL) {
		gen_s(g, "[REDACTED]");
		return;
	}
	/* With a key, an auditor holding it can check a known value. */
	audit_hash(x->k, v, strlen(v), h);
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
		if (audit_secret_value(x->c, ps->v[i].name)) {
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
	if (ev->function && audit_secret_value(x->c, ev->function))
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
	if (ev->path && audit_secret_value(x->c, ev->path))
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

int
audit_gen_event(struct audit_gen *gn, const struct audit_key *k,
    const struct audit_event *ev)
{
	struct rec x;

	gen_restart(gn);
	x.k = k;
	x.c = ev->conf;
	x.instance = ev->conf ? ev->conf->instance : NULL;
	gen_event(&x, gn->g, ev);
	return gn->failed || gn->out.len == 0 ? -1 : 0;
}

int
audit_gen_system(struct audit_gen *gn, const char *instance,
    const char *event, va_list ap)
{
	const char *k, *v;
	struct rec x;
	yajl_gen g = gn->g;

	gen_restart(gn);
	x.k = NULL;
	x.c = NULL;
	x.instance = instance;
	gen_head(&x, g, "system");
	gen_kv(g, "event", event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		gen_kv(g, k, v);
	}
	return gn->failed || gn->out.len == 0 ? -1 : 0;
}

const char *
audit_gen_bytes(const struct audit_gen *gn, size_t *len)
{
	*len = gn->out.len;
	return gn->out.p;
}
