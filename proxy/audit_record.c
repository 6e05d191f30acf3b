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

/* ---- JSON generation ---- */

/* A generator and the buffer it prints into. yajl's own buffer spent a
 * checked call on every comma, colon and quote (a third of a record's
 * cost); here, while there is room, a piece is one copy. */
struct audit_gen {
	yajl_gen g;
	struct buf out;
	int failed;                /* out could not grow: the record is lost */
	/* what the bound on a record cut from this one (SPEC section 7) */
	unsigned long long cut_strings, cut_bytes, cut_params, cut_calls;
	int ls;                    /* the string being printed holds U+2028/9 */
};

static void
gen_put(struct audit_gen *gn, const char *s, size_t n)
{
	struct buf *b = &gn->out;

	if (b->len + n < b->cap) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
	} else if (buf_add(b, s, n) == -1) {
		gn->failed = 1;
	}
}

/* yajl passes U+2028 and U+2029 through as raw UTF-8 (valid JSON), but
 * JavaScript-style line readers split a line there: they are written as
 * \u2028 and \u2029. gen_s sets gn->ls for a string that holds one, so
 * only such a string's pieces are scanned (a scan of every piece cost a
 * third more per record). yajl prints a string in pieces cut only at the
 * ASCII characters it escapes, so such a character never straddles two
 * calls. */
/* Not inlined: its loop would cost the fast path its registers. */
__attribute__((noinline)) static void
gen_print_ls(struct audit_gen *gn, const char *s, size_t n)
{
	const char *p, *end = s + n;

	while ((p = memchr(s, 0xe2, (size_t)(end - s))) != NULL) {
		if (end - p >= 3 && (unsigned char)p[1] == 0x80 &&
		    ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9)) {
			gen_put(gn, s, (size_t)(p - s));
			gen_put(gn, (unsigned char)p[2] == 0xa8 ? "\\u2028" :
			    "\\u2029", 6);
			s = p + 3;
		} else {
			gen_put(gn, s, (size_t)(p + 1 - s));
			s = p + 1;
		}
	}
	gen_put(gn, s, (size_t)(end - s));
}

static void
gen_print(void *ctx, const char *s, size_t n)
{
	struct audit_gen *gn = ctx;
	struct buf *b = &gn->out;

	if (gn->ls)
		gen_print_ls(gn, s, n);
	else if (b->len + n < b->cap) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
		b->p[b->len] = '\0';
	} else if (buf_add(b, s, n) == -1) {
		gn->failed = 1;
	}
}

/* 1 if s holds U+2028 or U+2029. */
static int
has_line_sep(const char *s, size_t n)
{
	const char *p, *end = s + n;

	while ((p = memchr(s, 0xe2, (size_t)(end - s))) != NULL) {
		if (end - p >= 3 && (unsigned char)p[1] == 0x80 &&
		    ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9))
			return 1;
		s = p + 1;
	}
	return 0;
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
	gn->cut_strings = gn->cut_bytes = gn->cut_params = gn->cut_calls = 0;
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

/* A string written by whmgate itself (a key, a marker): ASCII, short,
 * nothing to check. */
#define gen_k(g, lit) \
	yajl_gen_string((g)->g, (const unsigned char *)(lit), sizeof(lit) - 1)

/* How many bytes of one string the record still has room for: each
 * string may take at most AUDIT_STRING_MAX bytes, and at most half of
 * what is left of AUDIT_RECORD_MAX once escaping (up to 6 bytes per
 * byte) is counted, so however many strings follow, the line stays
 * within its bound. */
static size_t
string_room(const struct audit_gen *g)
{
	size_t used = g->out.len + AUDIT_RECORD_RESERVE, left;

	if (used >= AUDIT_RECORD_MAX)
		return 0;
	left = AUDIT_RECORD_MAX - used;
	if (left < 512)
		return 0;
	left = (left - 512) / 12;
	return left < AUDIT_STRING_MAX ? left : AUDIT_STRING_MAX;
}

/* Every string is checked to be UTF-8 here (parameter values come from
 * the client), with a fast path for ASCII; one that is not has its
 * non-ASCII bytes replaced, so a record is never lost over a string.
 * (yajl's own check refused such a string silently, leaving a key
 * without its value.) A string longer than the record has room for is
 * cut at a character boundary and ends with a marker saying how long it
 * was; the record's "cut" field counts it. */
static void
gen_s(struct audit_gen *g, const char *s)
{
	size_t n = strlen(s), i, keep, room;
	char *copy, mark[64];
	int ml;

	if (n <= 64 || n <= (room = string_room(g))) {
		if (utf8_valid(s, n)) {
			g->ls = has_line_sep(s, n);
			yajl_gen_string(g->g, (const unsigned char *)s, n);
			g->ls = 0;
			return;
		}
		keep = n;
		mark[0] = '\0';
		ml = 0;
	} else {
		/* Cut at a character boundary. */
		keep = room;
		while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80)
			keep--;
		ml = snprintf(mark, sizeof(mark), "[cut by whmgate: %zu bytes "
		    "in all]", n);
		g->cut_strings++;
		g->cut_bytes += n - keep;
	}
	if ((copy = malloc(keep + (size_t)ml + 1)) == NULL) {
		g->failed = 1;
		return;
	}
	memcpy(copy, s, keep);
	if (!utf8_valid(copy, keep))
		for (i = 0; i < keep; i++)
			if ((unsigned char)copy[i] >= 0x80)
				copy[i] = '?';
	memcpy(copy + keep, mark, (size_t)ml);
	g->ls = has_line_sep(copy, keep);
	yajl_gen_string(g->g, (const unsigned char *)copy, keep + (size_t)ml);
	g->ls = 0;
	free(copy);
}

/* Strings that come from the client unchecked (method, path) may hold
 * anything: keep printable ASCII, replace the rest, cap the length. */
static void
gen_raw(struct audit_gen *g, const char *s, size_t max)
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
gen_kv(struct audit_gen *g, const char *k, const char *v)
{
	yajl_gen_string(g->g, (const unsigned char *)k, strlen(k));
	if (v)
		gen_s(g, v);
	else
		yajl_gen_null(g->g);
}

/* Numbers without printf (yajl_gen_integer is a sprintf; these run a
 * few times for every record). */
static void
gen_int(struct audit_gen *g, long long v)
{
	char tmp[22];
	size_t n = 0;

	if (v < 0)
		tmp[n++] = '-';
	n += fmt_u64(tmp + n, v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v);
	yajl_gen_number(g->g, tmp, n);
}

/* Milliseconds with three decimals: k, then v as 12.345. */
static void
gen_ms(struct audit_gen *g, const char *k, double v)
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
	yajl_gen_number(g->g, tmp, n + 4);
}

/* A string from the request or from WHM, where no name says what it is:
 * the value rule only. */
static void
gen_str(const struct rec *x, struct audit_gen *g, const char *v)
{
	if (v == NULL)
		yajl_gen_null(g->g);
	else if (audit_secret_value(x->c, v))
		gen_k(g, "[REDACTED]");
	else
		gen_s(g, v);
}

/* A parameter's value. positional: the parameters of a cPanel API 1
 * call, whose arg-N arguments have no name to judge them by. rule: the
 * allow entry that decided on these parameters, or NULL. The value rule
 * (a key or token inside) holds even for a pinned value. */
static void
gen_value(const struct rec *x, struct audit_gen *g, const char *base,
    const char *v, int positional, const struct allow_rule *rule)
{
	unsigned char h[32];
	char out[12 + 65];

	if (!audit_secret_value(x->c, v) &&
	    ((!audit_redacted_name(x->c, base) &&
	    !(positional && strcmp(base, "arg") == 0)) ||
	    audit_pinned(rule, base, v))) {
		gen_s(g, v);
		return;
	}
	if (x->k == NULL || x->k->p == NULL) {
		gen_k(g, "[REDACTED]");
		return;
	}
	/* With a key, an auditor holding it can check a known value. */
	audit_hash(x->k, v, strlen(v), h);
	memcpy(out, "hmac-sha256:", 12);
	hex_encode(h, 32, out + 12);
	gen_s(g, out);
}

/* 1 for a cpanel call that runs cPanel API 1 (positional arg-N
 * arguments): every copy of cpanel_jsonapi_apiversion that is not
 * exactly 2 or 3 counts, as WHM may read "01" or " 1" as 1. Absent, the
 * call runs API 2. */
static int
cpanel_api1(const char *function, const struct params *ps)
{
	size_t i;

	if (function == NULL || strcmp(function, "cpanel") != 0)
		return 0;
	for (i = 0; i < ps->n; i++)
		if (strcmp(ps->v[i].base, "cpanel_jsonapi_apiversion") == 0 &&
		    strcmp(ps->v[i].value, "2") != 0 &&
		    strcmp(ps->v[i].value, "3") != 0)
			return 1;
	return 0;
}

static void
gen_params(const struct rec *x, struct audit_gen *g, const struct params *ps,
    const char *function, const struct allow_rule *rule, int skip_cmd,
    int add_version)
{
	int positional = cpanel_api1(function, ps);
	size_t i;

	yajl_gen_map_open(g->g);
	if (add_version)
		gen_kv(g, "api.version", "1");
	for (i = 0; i < ps->n; i++) {
		if (skip_cmd && strcmp(ps->v[i].base, "command") == 0)
			continue;
		if (g->out.len >= AUDIT_RECORD_SOFT) {
			/* The record's bound: the rest are counted, not
			 * written. */
			g->cut_params++;
			continue;
		}
		if (audit_secret_value(x->c, ps->v[i].name)) {
			/* A secret sent as a name: keep the slot, not it. */
			char name[40];
			snprintf(name, sizeof(name), "[REDACTED-NAME-%zu]", i);
			gen_s(g, name);
			gen_k(g, "[REDACTED]");
			continue;
		}
		gen_s(g, ps->v[i].name);
		gen_value(x, g, ps->v[i].base, ps->v[i].value, positional, rule);
	}
	yajl_gen_map_close(g->g);
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
gen_target(const struct rec *x, struct audit_gen *g, const struct params *ps)
{
	const char *t = target_of(ps);

	gen_k(g, "target");
	if (t == NULL)
		yajl_gen_null(g->g);
	else
		gen_value(x, g, "target", t, 0, NULL);
}

static const struct allow_rule *
rule_of(const struct client *cl, const char *rule_name)
{
	return cl && rule_name ? conf_allow(cl, rule_name) : NULL;
}

static void
gen_result(struct audit_gen *g, int r)
{
	if (r < 0)
		yajl_gen_null(g->g);
	else
		gen_int(g, r);
}

static void
gen_whm(const struct rec *x, struct audit_gen *g, const struct audit_event *ev)
{
	const struct call *c = ev->call;
	const struct outcome *o = ev->outcome;
	/* The client's allow entries say which values are public (enum). */
	const struct client *cl = x->c && ev->client_id ?
	    conf_client(x->c, ev->client_id) : NULL;
	size_t i;

	gen_k(g, "whm");
	yajl_gen_map_open(g->g);
	gen_k(g, "function");
	if (ev->function && audit_secret_value(x->c, ev->function))
		gen_k(g, "[REDACTED]");
	else if (ev->function)
		gen_raw(g, ev->function, 128);
	else
		yajl_gen_null(g->g);
	gen_k(g, "user");
	gen_str(x, g, ev->whm_user);
	if (c) {
		gen_target(x, g, &c->params);
		if (ev->with_params) {
			gen_k(g, "params");
			gen_params(x, g, &c->params, c->function,
			    rule_of(cl, c->rule_name), c->kind == CALL_BATCH,
			    c->add_api_version);
		}
		if (c->kind != CALL_PLAIN) {
			gen_k(g, "calls");
			yajl_gen_array_open(g->g);
			for (i = 0; i < c->nsubs; i++) {
				if (g->out.len >= AUDIT_RECORD_SOFT) {
					g->cut_calls += c->nsubs - i;
					break;
				}
				yajl_gen_map_open(g->g);
				gen_k(g, "function");
				gen_str(x, g, c->subs[i].function);
				gen_target(x, g, &c->subs[i].params);
				gen_k(g, "params");
				gen_params(x, g, &c->subs[i].params,
				    c->subs[i].function,
				    rule_of(cl, c->subs[i].rule_name), 0, 0);
				gen_k(g, "result");
				gen_result(g, o && i < o->nsubs ?
				    o->sub_result[i] : -1);
				yajl_gen_map_close(g->g);
			}
			if (c->kind == CALL_CPANEL || c->kind == CALL_UAPI) {
				yajl_gen_map_open(g->g);
				gen_kv(g, "function", c->function);
				gen_k(g, "module");
				gen_str(x, g, c->module);
				gen_k(g, "func");
				gen_str(x, g, c->func);
				gen_k(g, "user");
				if (c->cuser)
					gen_value(x, g, "user", c->cuser, 0, NULL);
				else
					yajl_gen_null(g->g);
				yajl_gen_map_close(g->g);
			}
			yajl_gen_array_close(g->g);
		}
	}
	if (o) {
		gen_k(g, "result");
		gen_result(g, c && c->kind == CALL_UAPI ? o->uapi_status :
		    o->result);
		gen_k(g, "reason");
		if (o->has_reason)
			gen_value(x, g, "reason", o->reason, 0, NULL);
		else
			yajl_gen_null(g->g);
		if (o->failed) {
			gen_k(g, "body");
			gen_k(g, "not JSON");
		}
	}
	yajl_gen_map_close(g->g);
}

static void
gen_head(const struct rec *x, struct audit_gen *g, const char *type)
{
	char ts[32];

	time_rfc3339(ts, sizeof(ts));
	yajl_gen_map_open(g->g);
	gen_kv(g, "ts", ts);
	gen_kv(g, "instance", x->instance);
	gen_kv(g, "type", type);
}

static void
gen_event(const struct rec *x, struct audit_gen *g, const struct audit_event *ev)
{
	gen_head(x, g, ev->type);
	gen_kv(g, "id", ev->id);
	gen_k(g, "client");
	yajl_gen_map_open(g->g);
	gen_kv(g, "id", ev->client_id);
	gen_kv(g, "ip", ev->ip);
	gen_k(g, "port");
	gen_int(g, ev->port);
	gen_kv(g, "auth", ev->auth);
	yajl_gen_map_close(g->g);
	gen_k(g, "http");
	yajl_gen_map_open(g->g);
	gen_k(g, "method");
	if (ev->method)
		gen_raw(g, ev->method, 32);
	else
		yajl_gen_null(g->g);
	gen_k(g, "path");
	if (ev->path && audit_secret_value(x->c, ev->path))
		gen_k(g, "[REDACTED]");
	else if (ev->path)
		gen_raw(g, ev->path, 512);
	else
		yajl_gen_null(g->g);
	if (ev->status) {
		gen_k(g, "status");
		gen_int(g, ev->status);
	}
	yajl_gen_map_close(g->g);
	if (ev->function || ev->call)
		gen_whm(x, g, ev);
	if (ev->decision >= 0) {
		gen_k(g, "decision");
		yajl_gen_map_open(g->g);
		gen_k(g, "allow");
		yajl_gen_bool(g->g, ev->decision);
		gen_kv(g, "rule", ev->rule);
		gen_kv(g, "code", ev->code);
		gen_k(g, "reason");
		gen_str(x, g, ev->reason);
		/* Section 12: the candidate's, where it differs. */
		if (ev->cand) {
			gen_k(g, "candidate");
			yajl_gen_map_open(g->g);
			gen_k(g, "allow");
			yajl_gen_bool(g->g, ev->cand_allow);
			gen_kv(g, "rule", ev->cand_rule);
			gen_kv(g, "code", ev->cand_code);
			gen_k(g, "reason");
			gen_str(x, g, ev->cand_reason);
			yajl_gen_map_close(g->g);
		}
		yajl_gen_map_close(g->g);
	}
	if (ev->up_status >= 0) {
		gen_k(g, "upstream");
		yajl_gen_map_open(g->g);
		gen_k(g, "status");
		if (ev->up_status > 0)
			gen_int(g, ev->up_status);
		else
			yajl_gen_null(g->g);
		gen_ms(g, "ms", ev->up_ms);
		gen_k(g, "bytes");
		gen_int(g, (long long)ev->up_bytes);
		gen_k(g, "error");
		gen_str(x, g, ev->up_error);
		yajl_gen_map_close(g->g);
	}
	if (ev->ms >= 0)
		gen_ms(g, "ms", ev->ms);
	if (g->cut_strings || g->cut_params || g->cut_calls) {
		gen_k(g, "cut");
		yajl_gen_map_open(g->g);
		gen_k(g, "strings");
		gen_int(g, (long long)g->cut_strings);
		gen_k(g, "bytes");
		gen_int(g, (long long)g->cut_bytes);
		gen_k(g, "params");
		gen_int(g, (long long)g->cut_params);
		gen_k(g, "calls");
		gen_int(g, (long long)g->cut_calls);
		yajl_gen_map_close(g->g);
	}
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
	gen_event(&x, gn, ev);
	return gn->failed || gn->out.len == 0 ? -1 : 0;
}

int
audit_gen_system(struct audit_gen *gn, const char *instance,
    const char *event, va_list ap)
{
	const char *k, *v;
	struct rec x;
	struct audit_gen *g = gn;

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
