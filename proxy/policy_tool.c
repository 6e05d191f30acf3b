/* policy_tool.c - see policy_tool.h.
 *
 * The tools re-implement no rule: requests are parsed with
 * params_parse_limited/call_parse_limited and the conf's limits, decided
 * with policy_check_ex, and recorded calls are rebuilt with record_call.
 * Output goes to stdout; problems go to stderr as "FILE: ..." or
 * "FILE:LINE: ...". A trail line that cannot be read stops suggest and
 * replay (exit 2): a policy is never built from half a trail. */
#define _GNU_SOURCE
#include "policy_tool.h"
#include "audit.h"
#include "audit_verify.h"
#include "conf.h"
#include "http.h"
#include "params.h"
#include "policy.h"
#include "record_read.h"
#include "target.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#define EXIT_USAGE 2

/* qsort, but an empty array may have a NULL base (C11 7.22.5 says the
 * pointer must be valid even for zero elements). */
static void
sort_n(void *base, size_t n, size_t size,
    int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

static void
usage(void)
{
	fputs("usage: whmgate policy show -c FILE [CLIENT...] [--json]\n"
	    "       whmgate policy check -c FILE CLIENT 'FUNCTION?QUERY'\n"
	    "       whmgate policy check -c FILE CLIENT --post 'FUNCTION[?QUERY]' 'BODY'\n"
	    "       whmgate policy suggest AUDITFILE... [--client ID]... [--since TS]\n"
	    "                              [--successful] [--verify [--key KEYFILE]]\n"
	    "       whmgate policy replay -c FILE AUDITFILE... [--client ID]...\n"
	    "                             [--verify [--key KEYFILE]]\n", stderr);
}

void
policy_tool_warnings(const struct conf *c, FILE *out)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		if (c->clients[i].allow_any)
			fprintf(out, "warning: %s: %s: \"any\" allows every "
			    "function and parameter to this client (every call "
			    "is recorded); replace it with what `whmgate policy "
			    "suggest` shows it uses\n", c->file,
			    c->clients[i].allow_path);
}

static struct conf *
load(const char *file)
{
	struct buf errs, text;
	struct conf *c = NULL;
	char chunk[65536];
	size_t n;
	FILE *f;

	buf_init(&errs);
	buf_init(&text);
	if ((f = fopen(file, "r")) == NULL) {
		fprintf(stderr, "%s: $: cannot open: %s\n", file, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (text.len > 16 * 1024 * 1024 || buf_add(&text, chunk, n) == -1)
			break;
	if (ferror(f) || n > 0)
		fprintf(stderr, "%s: $: cannot read\n", file);
	else
		/* The tools never send a token: secrets are not read, so
		 * they run where the tokens are not (a laptop, CI). */
		c = conf_parse(file, text.p ? text.p : "", text.len, 0, &errs);
	fclose(f);
	if (c == NULL && errs.len)
		fputs(errs.p, stderr);
	buf_fini(&errs);
	buf_fini(&text);
	return c;
}

/* ---- JSON text ---- */

static void
json_str(struct buf *b, const char *s)
{
	const unsigned char *p;

	buf_addc(b, '"');
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			buf_addc(b, '\\');
			buf_addc(b, (char)*p);
		} else if (*p < 0x20 || *p == 0x7f) {
			buf_printf(b, "\\u%04x", *p);
		} else {
			buf_addc(b, (char)*p);
		}
	}
	buf_addc(b, '"');
}

/* One constraint, normalised: {"enum":[..],"pattern":"..","required":true} */
static void
constraint_json(struct buf *b, const struct constraint *co)
{
	const char *sep = "";
	size_t i;

	buf_addc(b, '{');
	if (co->has_enum) {
		buf_adds(b, "\"enum\": [");
		for (i = 0; i < co->nenums; i++) {
			if (i)
				buf_adds(b, ", ");
			json_str(b, co->enums[i]);
		}
		buf_addc(b, ']');
		sep = ", ";
	}
	if (co->has_pattern) {
		buf_printf(b, "%s\"pattern\": ", sep);
		json_str(b, co->pattern ? co->pattern : "");
		sep = ", ";
	}
	if (co->required) {
		buf_printf(b, "%s\"required\": true", sep);
		sep = ", ";
	}
	if (co->absent)
		buf_printf(b, "%s\"absent\": true", sep);
	buf_addc(b, '}');
}

static int
cmp_cons(const void *a, const void *b)
{
	return strcmp((*(const struct constraint *const *)a)->param,
	    (*(const struct constraint *const *)b)->param);
}

/* An entry's constraints by parameter name, as JSON. */
static void
rule_json(struct buf *b, const struct allow_rule *r)
{
	const struct constraint **v = xcalloc(r->ncons + 1, sizeof(*v));
	size_t i;

	for (i = 0; i < r->ncons; i++)
		v[i] = &r->cons[i];
	sort_n(v, r->ncons, sizeof(*v), cmp_cons);
	buf_addc(b, '{');
	for (i = 0; i < r->ncons; i++) {
		if (i)
			buf_adds(b, ", ");
		json_str(b, v[i]->param);
		buf_adds(b, ": ");
		constraint_json(b, v[i]);
	}
	buf_addc(b, '}');
	free(v);
}

static int
cmp_rules(const void *a, const void *b)
{
	return strcmp((*(const struct allow_rule *const *)a)->name,
	    (*(const struct allow_rule *const *)b)->name);
}

static const struct allow_rule **
sorted_rules(const struct allow_rule *rules, size_t n)
{
	const struct allow_rule **v = xcalloc(n + 1, sizeof(*v));
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = &rules[i];
	sort_n(v, n, sizeof(*v), cmp_rules);
	return v;
}

static void
rules_json(struct buf *b, int any, const struct allow_rule *rules, size_t n)
{
	const struct allow_rule **v;
	size_t i;

	if (any) {
		buf_adds(b, "\"any\"");
		return;
	}
	v = sorted_rules(rules, n);
	buf_addc(b, '{');
	for (i = 0; i < n; i++) {
		buf_adds(b, i ? ",\n      " : "\n      ");
		json_str(b, v[i]->name);
		buf_adds(b, ": ");
		rule_json(b, v[i]);
	}
	buf_adds(b, n ? "\n    }" : "}");
	free(v);
}

/* ---- show ---- */

static void
cidr_text(const struct cidr *c, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(c->family, c->addr, a, sizeof(a));
	snprintf(out, len, "%s/%d", a, c->bits);
}

static void
expires_text(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0) {
		snprintf(out, len, "never");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
constraint_text(struct buf *b, const struct constraint *co)
{
	const char *sep = "";
	size_t i;

	if (co->absent) {
		buf_adds(b, "must be absent");
		return;
	}
	if (co->required) {
		buf_adds(b, "required");
		sep = "; ";
	}
	if (co->has_enum) {
		buf_printf(b, "%sone of", sep);
		for (i = 0; i < co->nenums; i++) {
			buf_adds(b, i ? ", " : " ");
			json_str(b, co->enums[i]);
		}
		sep = "; ";
	}
	if (co->has_pattern) {
		buf_printf(b, "%smatches ", sep);
		json_str(b, co->pattern ? co->pattern : "");
	}
}

static void
rule_text(struct buf *b, const struct allow_rule *r, const char *indent)
{
	const struct constraint **v;
	size_t i;

	if (r->ncons == 0) {
		buf_printf(b, "%s%s: any parameters\n", indent, r->name);
		return;
	}
	buf_printf(b, "%s%s:\n", indent, r->name);
	v = xcalloc(r->ncons + 1, sizeof(*v));
	for (i = 0; i < r->ncons; i++)
		v[i] = &r->cons[i];
	sort_n(v, r->ncons, sizeof(*v), cmp_cons);
	for (i = 0; i < r->ncons; i++) {
		buf_printf(b, "%s  %s: ", indent, v[i]->param);
		constraint_text(b, v[i]);
		buf_addc(b, '\n');
	}
	free(v);
}

static const struct allow_rule *
find_rule(const struct allow_rule *rules, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(rules[i].name, name) == 0)
			return &rules[i];
	return NULL;
}

static int
rules_equal(const struct allow_rule *a, const struct allow_rule *b)
{
	struct buf x, y;
	int eq;

	buf_init(&x);
	buf_init(&y);
	rule_json(&x, a);
	rule_json(&y, b);
	eq = x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
	buf_fini(&x);
	buf_fini(&y);
	return eq;
}

/* What the candidate would change, entry by entry. */
static void
candidate_text(struct buf *b, const struct client *cl)
{
	const struct allow_rule **v, *o;
	size_t i;
	int any_diff = 0;

	buf_adds(b, "  candidate (tried in shadow; the decision taken is allow's):\n");
	if (cl->cand_any || cl->allow_any) {
		if (cl->cand_any && cl->allow_any)
			buf_adds(b, "    same as allow (any)\n");
		else if (cl->cand_any)
			buf_adds(b, "    any: would allow every function and "
			    "parameter\n");
		else {
			buf_adds(b, "    instead of any, only:\n");
			v = sorted_rules(cl->cand, cl->ncand);
			for (i = 0; i < cl->ncand; i++)
				rule_text(b, v[i], "      ");
			free(v);
		}
		return;
	}
	v = sorted_rules(cl->allow, cl->nallow);
	for (i = 0; i < cl->nallow; i++) {
		o = find_rule(cl->cand, cl->ncand, v[i]->name);
		if (o == NULL) {
			buf_printf(b, "    drops %s\n", v[i]->name);
			any_diff = 1;
		} else if (!rules_equal(v[i], o)) {
			buf_adds(b, "    changes\n");
			rule_text(b, o, "      ");
			any_diff = 1;
		}
	}
	free(v);
	v = sorted_rules(cl->cand, cl->ncand);
	for (i = 0; i < cl->ncand; i++)
		if (find_rule(cl->allow, cl->nallow, v[i]->name) == NULL) {
			buf_adds(b, "    adds\n");
			rule_text(b, v[i], "      ");
			any_diff = 1;
		}
	free(v);
	if (!any_diff)
		buf_adds(b, "    no difference\n");
}

static void
show_text(struct buf *b, const struct client *cl)
{
	char t[INET6_ADDRSTRLEN + 8];
	const struct allow_rule **v;
	size_t i;

	buf_printf(b, "client %s\n", cl->id);
	buf_printf(b, "  identities: %zu key%s, %zu certificate%s\n", cl->nkeys,
	    cl->nkeys == 1 ? "" : "s", cl->ncerts, cl->ncerts == 1 ? "" : "s");
	buf_adds(b, "  source: ");
	if (!cl->has_source)
		buf_adds(b, "any");
	for (i = 0; i < cl->nsource; i++) {
		cidr_text(&cl->source[i], t, sizeof(t));
		buf_printf(b, "%s%s", i ? ", " : "", t);
	}
	expires_text(cl->expires, t, sizeof(t));
	buf_printf(b, "\n  expires: %s\n  whm_user: %s\n", t, cl->whm_user);
	if (cl->has_rate)
		buf_printf(b, "  rate: %g per second, burst %g\n",
		    cl->rate_per_second, cl->rate_burst);
	else
		buf_adds(b, "  rate: unlimited\n");
	if (cl->max_inflight)
		buf_printf(b, "  max_inflight: %ld\n", cl->max_inflight);
	else
		buf_adds(b, "  max_inflight: unlimited\n");
	if (cl->allow_any) {
		buf_adds(b, "  allow: any (every function and parameter)\n");
	} else if (cl->nallow == 0) {
		buf_adds(b, "  allow: nothing\n");
	} else {
		buf_adds(b, "  allow:\n");
		v = sorted_rules(cl->allow, cl->nallow);
		for (i = 0; i < cl->nallow; i++)
			rule_text(b, v[i], "    ");
		free(v);
	}
	if (cl->has_candidate)
		candidate_text(b, cl);
}

static void
show_json(struct buf *b, const struct client *cl, int first)
{
	char t[INET6_ADDRSTRLEN + 8];
	size_t i;

	buf_adds(b, first ? "\n  " : ",\n  ");
	json_str(b, cl->id);
	buf_printf(b, ": {\n    \"keys\": %zu, \"certs\": %zu,\n    \"source\": ",
	    cl->nkeys, cl->ncerts);
	if (!cl->has_source)
		buf_adds(b, "null");
	else {
		buf_addc(b, '[');
		for (i = 0; i < cl->nsource; i++) {
			cidr_text(&cl->source[i], t, sizeof(t));
			if (i)
				buf_adds(b, ", ");
			json_str(b, t);
		}
		buf_addc(b, ']');
	}
	buf_adds(b, ",\n    \"expires\": ");
	if (cl->expires) {
		expires_text(cl->expires, t, sizeof(t));
		json_str(b, t);
	} else
		buf_adds(b, "null");
	buf_adds(b, ",\n    \"whm_user\": ");
	json_str(b, cl->whm_user);
	if (cl->has_rate)
		buf_printf(b, ",\n    \"rate\": {\"per_second\": %g, \"burst\": %g}",
		    cl->rate_per_second, cl->rate_burst);
	else
		buf_adds(b, ",\n    \"rate\": null");
	if (cl->max_inflight)
		buf_printf(b, ",\n    \"max_inflight\": %ld", cl->max_inflight);
	else
		buf_adds(b, ",\n    \"max_inflight\": null");
	buf_adds(b, ",\n    \"allow\": ");
	rules_json(b, cl->allow_any, cl->allow, cl->nallow);
	buf_adds(b, ",\n    \"candidate\": ");
	if (cl->has_candidate)
		rules_json(b, cl->cand_any, cl->cand, cl->ncand);
	else
		buf_adds(b, "null");
	buf_adds(b, "\n  }");
}

static int
cmd_show(int argc, char **argv)
{
	const char *file = NULL;
	const char **want = xcalloc((size_t)argc + 1, sizeof(char *));
	struct conf *c;
	struct buf b;
	size_t i, nwant = 0, shown = 0;
	int json = 0, k, rc = 0;

	for (k = 0; k < argc; k++) {
		if (strcmp(argv[k], "-c") == 0 && k + 1 < argc)
			file = argv[++k];
		else if (strcmp(argv[k], "--json") == 0)
			json = 1;
		else if (argv[k][0] == '-') {
			usage();
			free(want);
			return EXIT_USAGE;
		} else
			want[nwant++] = argv[k];
	}
	if (file == NULL) {
		usage();
		free(want);
		return EXIT_USAGE;
	}
	if ((c = load(file)) == NULL) {
		free(want);
		return EXIT_USAGE;
	}
	for (i = 0; i < nwant; i++)
		if (conf_client(c, want[i]) == NULL) {
			fprintf(stderr, "%s: no client %s\n", file, want[i]);
			rc = EXIT_USAGE;
		}
	buf_init(&b);
	if (json)
		buf_adds(&b, "{\"clients\": {");
	for (i = 0; rc == 0 && i < c->nclients; i++) {
		size_t j;

		for (j = 0; j < nwant; j++)
			if (strcmp(want[j], c->clients[i].id) == 0)
				break;
		if (nwant && j == nwant)
			continue;
		if (json)
			show_json(&b, &c->clients[i], shown == 0);
		else {
			if (shown)
				buf_addc(&b, '\n');
			show_text(&b, &c->clients[i]);
		}
		shown++;
	}
	if (json)
		buf_adds(&b, shown ? "\n}}\n" : "}}\n");
	if (rc == 0 && b.len)
		fwrite(b.p, 1, b.len, stdout);
	buf_fini(&b);
	conf_unref(c);
	free(want);
	return rc;
}

/* ---- check ---- */

static const char *
code_of(int status)
{
	return status == 413 ? "payload_too_large" : status == 431 ?
	    "headers_too_large" : "bad_request";
}

static void
print_decision(const char *prefix, const struct decision *d)
{
	if (d->allow)
		printf("%sallow %s\n", prefix, d->rule ? d->rule : "");
	else
		printf("%srefuse %s: %s\n", prefix, d->code, d->reason);
}

/* The request as the daemon reads it: a raw GET or POST of REQUEST
 * through http.c (framing, control characters, sizes), then the target,
 * the query and the body as req.c takes them. Returns 0, or -1 with
 * *status and *why. */
static int
read_request(const struct conf *c, const char *req, const char *body,
    struct arena *a, struct http_req *hr, const char **query, char **fn,
    int *status, const char **why)
{
	struct http_parser hp;
	enum http_event ev;
	struct buf raw;
	size_t used, off = 0;
	const char *f;
	char *path;
	int rc = -1, st;

	buf_init(&raw);
	if (body)
		buf_printf(&raw, "POST /json-api/%s HTTP/1.1\r\nHost: whmgate\r\n"
		    "Content-Type: application/x-www-form-urlencoded\r\n"
		    "Content-Length: %zu\r\n\r\n%s", req, strlen(body), body);
	else
		buf_printf(&raw, "GET /json-api/%s HTTP/1.1\r\nHost: whmgate\r\n"
		    "\r\n", req);
	memset(hr, 0, sizeof(*hr));
	hr->arena = a;
	http_parser_init(&hp, (size_t)c->limits.max_header_bytes,
	    (size_t)c->limits.max_body_bytes);
	http_begin(&hp, hr);
	do {
		ev = http_feed(&hp, raw.p + off, raw.len - off, &used);
		off += used;
	} while ((ev == HEV_HEAD || ev == HEV_MORE) && off < raw.len);
	if (ev == HEV_HEAD || ev == HEV_MORE)
		ev = http_feed(&hp, "", 0, &used);
	if (ev == HEV_ERROR) {
		*status = hp.status;
		*why = hp.reason ? hp.reason : "malformed request";
		goto out;
	}
	if (ev != HEV_DONE) {
		*status = 400;
		*why = "incomplete request";
		goto out;
	}
	/* The daemon's target rule (target.c), as req.c applies it. */
	if ((st = target_parse(a, hr->target, &path, query, &f)) != 0) {
		*status = st;
		*why = st == 404 ? "no such path" : "request target not accepted";
		goto out;
	}
	*fn = (char *)f;
	rc = 0;
out:
	http_parser_fini(&hp);
	buf_fini(&raw);
	return rc;
}

static int
cmd_check(int argc, char **argv)
{
	const char *file = NULL, *client = NULL, *req = NULL, *body = NULL;
	const struct client *cl;
	struct params_limits lim;
	struct decision d, cd;
	struct http_req hr;
	struct conf *c;
	struct arena a;
	struct call call;
	const char *q, *why = NULL;
	char *fn;
	int k, status = 400, rc;

	for (k = 0; k < argc; k++) {
		if (strcmp(argv[k], "-c") == 0 && k + 1 < argc)
			file = argv[++k];
		else if (strcmp(argv[k], "--post") == 0 && k + 2 < argc && !req) {
			req = argv[++k];
			body = argv[++k];
		} else if (argv[k][0] == '-' || (client && req)) {
			usage();
			return EXIT_USAGE;
		} else if (client == NULL)
			client = argv[k];
		else
			req = argv[k];
	}
	if (file == NULL || client == NULL || req == NULL) {
		usage();
		return EXIT_USAGE;
	}
	/* A request pasted with its path ('/json-api/fn?...') is the same
	 * request. */
	if (strncmp(req, "/json-api/", 10) == 0)
		req += 10;
	if ((c = load(file)) == NULL)
		return EXIT_USAGE;
	if ((cl = conf_client(c, client)) == NULL) {
		fprintf(stderr, "%s: no client %s\n", file, client);
		conf_unref(c);
		return EXIT_USAGE;
	}
	lim.max_params = (size_t)c->limits.max_params;
	lim.max_batch_calls = (size_t)c->limits.max_batch_calls;
	arena_init(&a);
	memset(&call, 0, sizeof(call));
	memset(&hr, 0, sizeof(hr));
	/* Section 4, in the daemon's order: framing and target, then the
	 * parameters of the query and the body, then the call. */
	if (read_request(c, req, body, &a, &hr, &q, &fn, &status, &why) == -1)
		goto bad;
	status = 400;
	if (params_parse_limited(&a, &call.params, q, strlen(q), &lim, &status,
	    &why) == -1)
		goto bad;
	if (hr.body.len) {
		if (!params_body_ok(hr.body.p, hr.body.len)) {
			status = 400;
			why = "raw CR, LF or NUL in the body";
			goto bad;
		}
		if (params_parse_limited(&a, &call.params, hr.body.p,
		    hr.body.len, &lim, &status, &why) == -1)
			goto bad;
	}
	if (call_parse_limited(&a, &call, fn, &lim, &status, &why) == -1)
		goto bad;
	policy_check(cl, &call, &d);
	print_decision("", &d);
	if (policy_check_candidate(cl, &call, &cd) != 1 && policy_differs(&d, &cd))
		print_decision("candidate: ", &cd);
	rc = d.allow ? 0 : 1;
	buf_fini(&hr.body);
	arena_fini(&a);
	conf_unref(c);
	return rc;
bad:
	printf("refuse %s: %s\n", code_of(status), why);
	buf_fini(&hr.body);
	arena_fini(&a);
	conf_unref(c);
	return 1;
}

/* ---- reading trails ---- */

struct opts {
	const char *file;          /* -c */
	char **files;
	int nfiles;
	const char **clients;
	int nclients;
	const char *since;
	int successful, verify;
	const char *key;
};

static int
parse_opts(int argc, char **argv, struct opts *o, int need_conf)
{
	int k;

	memset(o, 0, sizeof(*o));
	o->files = xcalloc((size_t)argc + 1, sizeof(char *));
	o->clients = xcalloc((size_t)argc + 1, sizeof(char *));
	for (k = 0; k < argc; k++) {
		if (strcmp(argv[k], "-c") == 0 && k + 1 < argc && need_conf)
			o->file = argv[++k];
		else if (strcmp(argv[k], "--client") == 0 && k + 1 < argc)
			o->clients[o->nclients++] = argv[++k];
		else if (strcmp(argv[k], "--since") == 0 && k + 1 < argc &&
		    !need_conf)
			o->since = argv[++k];
		else if (strcmp(argv[k], "--successful") == 0 && !need_conf)
			o->successful = 1;
		else if (strcmp(argv[k], "--verify") == 0)
			o->verify = 1;
		else if (strcmp(argv[k], "--key") == 0 && k + 1 < argc)
			o->key = argv[++k];
		else if (argv[k][0] == '-' && argv[k][1] != '\0')
			return -1;
		else
			o->files[o->nfiles++] = argv[k];
	}
	if (o->nfiles == 0 || (need_conf && o->file == NULL) ||
	    (o->key && !o->verify))
		return -1;
	/* Standard input is read once: not by --verify and then again, nor
	 * by --successful's two passes. */
	for (k = 0; k < o->nfiles; k++)
		if (strcmp(o->files[k], "-") == 0 && (o->verify || o->successful)) {
			fputs("standard input cannot be read twice (--verify, "
			    "--successful): give a file\n", stderr);
			return -1;
		}
	return 0;
}

static void
opts_fini(struct opts *o)
{
	free(o->files);
	free(o->clients);
}

static int
want_client(const struct opts *o, const char *id)
{
	int i;

	if (o->nclients == 0)
		return 1;
	for (i = 0; id && i < o->nclients; i++)
		if (strcmp(o->clients[i], id) == 0)
			return 1;
	return 0;
}

/* --verify: the files must form one intact chain before any line of them
 * is believed. audit_verify's report goes to stderr here. */
static int
verify_first(const struct opts *o)
{
	int saved, rc;

	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	if (saved == -1 || dup2(STDERR_FILENO, STDOUT_FILENO) == -1) {
		fprintf(stderr, "cannot redirect the verification report: %s\n",
		    strerror(errno));
		return -1;
	}
	rc = audit_verify(o->files, o->nfiles, o->key);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	if (rc != 0)
		fprintf(stderr, "the trail failed verification: nothing was "
		    "read from it\n");
	return rc == 0 ? 0 : -1;
}

typedef int (*record_fn)(void *arg, const char *file, unsigned long line,
    const struct record *r);

/* Calls fn for each record of the files, in order. A line that is not a
 * record stops the walk: "FILE:LINE: why" on stderr, -1. */
static int
walk(const struct opts *o, record_fn fn, void *arg)
{
	struct record r;
	char err[192], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno;
	int i, rc = 0;
	FILE *f;

	for (i = 0; i < o->nfiles && rc == 0; i++) {
		f = strcmp(o->files[i], "-") == 0 ? stdin :
		    fopen(o->files[i], "r");
		if (f == NULL) {
			fprintf(stderr, "%s: %s\n", o->files[i], strerror(errno));
			rc = -1;
			break;
		}
		lineno = 0;
		while (rc == 0 && (n = getline(&line, &cap, f)) != -1) {
			lineno++;
			if (n > 0 && line[n - 1] == '\n')
				n--;
			if (n == 0)
				continue;
			if (record_parse(line, (size_t)n, &r, err,
			    sizeof(err)) == -1) {
				fprintf(stderr, "%s:%lu: %s\n", o->files[i],
				    lineno, err);
				rc = -1;
				break;
			}
			rc = fn(arg, o->files[i], lineno, &r);
			record_fini(&r);
		}
		if (rc == 0 && ferror(f)) {
			fprintf(stderr, "%s: %s\n", o->files[i], strerror(errno));
			rc = -1;
		}
		if (f != stdin)
			fclose(f);
	}
	free(line);
	return rc;
}

/* ---- suggest ---- */

#define ENUM_MAX 10

struct pstat {
	char *name;
	unsigned long plain;       /* calls with the plain name */
	unsigned long values;      /* values seen (all copies) */
	unsigned long stamp;       /* last call counted in plain */
	int redacted, odd;         /* odd: a byte outside printable ASCII */
	char *vals[ENUM_MAX + 1];
	size_t nvals;              /* distinct, up to ENUM_MAX + 1 */
	int has_empty;
	size_t minlen, maxlen;     /* of the non-empty values */
	unsigned char first[256], rest[256];
};

struct entry {
	char *name;
	unsigned long calls;
	struct pstat *ps;
	size_t nps;
};

struct sclient {
	char *id;
	unsigned long calls;
	struct entry *es;
	size_t nes;
};

struct suggest {
	const struct opts *o;
	struct sclient *cs;
	size_t ncs;
	char **ok_ids;             /* --successful: ids with result 1 */
	size_t nok, capok;
	unsigned long serial, records, calls, skipped;
	struct arena a;
	struct params_limits lim;
};

static void *
grow(void *p, size_t n, size_t size)
{
	/* n is a count that just reached a power of two, or 0 */
	void *q;

	if (n && (n & (n - 1)) != 0)
		return p;
	q = realloc(p, (n ? n * 2 : 4) * size);
	if (q == NULL) {
		fputs("out of memory\n", stderr);
		exit(EXIT_USAGE);
	}
	return q;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
collect_ok(void *arg, const char *file, unsigned long line,
    const struct record *r)
{
	struct suggest *s = arg;

	(void)file;
	(void)line;
	if (strcmp(r->type, "response") == 0 && r->result == 1) {
		s->ok_ids = grow(s->ok_ids, s->nok, sizeof(char *));
		s->ok_ids[s->nok++] = xstrdup(r->id);
	}
	return 0;
}

static struct entry *
entry_get(struct sclient *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nes; i++)
		if (strcmp(c->es[i].name, name) == 0)
			return &c->es[i];
	c->es = grow(c->es, c->nes, sizeof(*c->es));
	memset(&c->es[c->nes], 0, sizeof(*c->es));
	c->es[c->nes].name = xstrdup(name);
	return &c->es[c->nes++];
}

static struct pstat *
pstat_get(struct entry *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->nps; i++)
		if (strcmp(e->ps[i].name, name) == 0)
			return &e->ps[i];
	e->ps = grow(e->ps, e->nps, sizeof(*e->ps));
	memset(&e->ps[e->nps], 0, sizeof(*e->ps));
	e->ps[e->nps].name = xstrdup(name);
	e->ps[e->nps].minlen = (size_t)-1;
	return &e->ps[e->nps++];
}

static void
pstat_value(struct pstat *p, const char *v)
{
	const unsigned char *u = (const unsigned char *)v;
	size_t i, n = strlen(v);

	p->values++;
	if (record_redacted(v)) {
		p->redacted = 1;
		return;
	}
	for (i = 0; i < p->nvals; i++)
		if (strcmp(p->vals[i], v) == 0)
			break;
	if (i == p->nvals && p->nvals <= ENUM_MAX)
		p->vals[p->nvals++] = xstrdup(v);
	if (n == 0) {
		p->has_empty = 1;
		return;
	}
	if (n < p->minlen)
		p->minlen = n;
	if (n > p->maxlen)
		p->maxlen = n;
	for (i = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] >= 0x7f)
			p->odd = 1;
		if (i == 0)
			p->first[u[i]] = 1;
		else
			p->rest[u[i]] = 1;
	}
}

/* Names that select a target or that whmgate adds carry no rule. */
static int
skip_param(const char *entry, const char *base, int batch_outer)
{
	if (strcmp(base, "api.version") == 0)
		return 1;
	if (batch_outer && strcmp(base, "command") == 0)
		return 1;
	if (strncmp(entry, "uapi_cpanel:", 12) == 0)
		return strcmp(base, "cpanel.module") == 0 ||
		    strcmp(base, "cpanel.function") == 0;
	if (strncmp(entry, "cpanel:", 7) == 0)
		return strcmp(base, "cpanel_jsonapi_module") == 0 ||
		    strcmp(base, "cpanel_jsonapi_func") == 0;
	return 0;
}

static void
count_call(struct suggest *s, struct sclient *c, const char *name,
    const struct params *ps, int batch_outer)
{
	struct entry *e = entry_get(c, name);
	struct pstat *p;
	size_t i;

	e->calls++;
	s->serial++;
	for (i = 0; i < ps->n; i++) {
		if (skip_param(name, ps->v[i].base, batch_outer))
			continue;
		p = pstat_get(e, ps->v[i].base);
		if (p->stamp != s->serial) {
			p->stamp = s->serial;
			if (params_count(ps, p->name, 1) > 0)
				p->plain++;
		}
		pstat_value(p, ps->v[i].value);
	}
}

static int
on_suggest(void *arg, const char *file, unsigned long line,
    const struct record *r)
{
	struct suggest *s = arg;
	struct sclient *c = NULL;
	struct call call;
	const char *why;
	size_t i;

	s->records++;
	if (strcmp(r->type, "request") != 0 || !r->has_call || r->client == NULL ||
	    !want_client(s->o, r->client))
		return 0;
	if (s->o->since && strcmp(r->ts, s->o->since) < 0)
		return 0;
	if (s->o->successful && (s->nok == 0 || bsearch(&r->id, s->ok_ids,
	    s->nok, sizeof(char *), cmp_str) == NULL))
		return 0;
	if (record_call(r, &s->a, &s->lim, &call, &why) == -1) {
		fprintf(stderr, "%s:%lu: skipped: %s\n", file, line, why);
		s->skipped++;
		return 0;
	}
	for (i = 0; i < s->ncs; i++)
		if (strcmp(s->cs[i].id, r->client) == 0)
			c = &s->cs[i];
	if (c == NULL) {
		s->cs = grow(s->cs, s->ncs, sizeof(*s->cs));
		c = &s->cs[s->ncs++];
		memset(c, 0, sizeof(*c));
		c->id = xstrdup(r->client);
	}
	c->calls++;
	s->calls++;
	count_call(s, c, call.rule_name, &call.params, call.kind == CALL_BATCH);
	for (i = 0; i < call.nsubs; i++)
		count_call(s, c, call.subs[i].rule_name, &call.subs[i].params, 0);
	/* The arena holds one call at a time. */
	arena_fini(&s->a);
	arena_init(&s->a);
	return 0;
}

/* Characters of one position set, as an ERE piece: a literal, a bracket
 * expression, or '.' when a byte is not printable ASCII. */
static void
class_ere(struct buf *b, const unsigned char set[256], int odd)
{
	static const char special[] = ".[]()*+?{}|^$\\";
	int c, n = 0, only = -1, lo, hi;

	if (odd) {
		buf_addc(b, '.');
		return;
	}
	for (c = 0; c < 256; c++)
		if (set[c]) {
			n++;
			only = c;
		}
	if (n == 1) {
		if (strchr(special, only))
			buf_addc(b, '\\');
		buf_addc(b, (char)only);
		return;
	}
	buf_addc(b, '[');
	/* ']' first, '-' last, '^' never first, '[' never before '.', '=' or
	 * ':' (collating elements): bracket expressions read literally. */
	if (set[']'])
		buf_addc(b, ']');
	for (lo = 0; lo < 3; lo++) {
		static const char from_[] = "aA0", to_[] = "zZ9";
		int from = from_[lo], to = to_[lo];

		/* runs of three or more as ranges, else the members */
		for (c = from; c <= to; c++) {
			if (!set[c])
				continue;
			for (hi = c; hi + 1 <= to && set[hi + 1]; hi++)
				;
			if (hi - c >= 2) {
				buf_printf(b, "%c-%c", c, hi);
				c = hi;
			} else
				buf_addc(b, (char)c);
		}
	}
	for (c = 0x20; c < 0x7f; c++)
		if (set[c] && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != ']' && c != '-' && c != '^' &&
		    c != '[')
			buf_addc(b, (char)c);
	if (set['^'])
		buf_addc(b, '^');
	if (set['['])
		buf_addc(b, '[');
	if (set['-'])
		buf_addc(b, '-');
	buf_addc(b, ']');
}

/* A pattern that covers every non-redacted value seen: the first
 * character's class, the others' class with length bounds. */
static void
covering_pattern(struct buf *b, const struct pstat *p)
{
	size_t lo, hi;
	int restn = 0, c;

	for (c = 0; c < 256; c++)
		restn += p->rest[c];
	buf_adds(b, p->has_empty ? "^(" : "^");
	class_ere(b, p->first, p->odd);
	if (p->maxlen > 1) {
		lo = p->minlen - 1;
		hi = p->maxlen - 1;
		class_ere(b, p->rest, p->odd);
		if (hi > 1000)
			buf_printf(b, "{%zu,}", lo);
		else if (lo == hi)
			buf_printf(b, "{%zu}", lo);
		else
			buf_printf(b, "{%zu,%zu}", lo, hi);
	}
	(void)restn;
	buf_adds(b, p->has_empty ? ")?$" : "$");
}

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name,
	    ((const struct entry *)b)->name);
}

static int
cmp_pstat(const void *a, const void *b)
{
	return strcmp(((const struct pstat *)a)->name,
	    ((const struct pstat *)b)->name);
}

static int
cmp_sclient(const void *a, const void *b)
{
	return strcmp(((const struct sclient *)a)->id,
	    ((const struct sclient *)b)->id);
}

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A parameter name in a // comment: the client chose it, and a line
 * break in it would end the comment and put its rest into the config. */
static void
comment_str(struct buf *note, const char *name)
{
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			buf_printf(note, "\\x%02x", *p);
		else
			buf_addc(note, (char)*p);
}

/* One parameter's rule, or nothing to say (returns 0). */
static int
pstat_rule(struct buf *b, struct buf *note, const struct entry *e,
    struct pstat *p)
{
	int required = p->plain == e->calls;
	size_t i;

	if (p->redacted) {
		buf_adds(note, "; ");
		comment_str(note, p->name);
		buf_adds(note, ": redacted, no value rule");
		if (!required)
			return 0;
		buf_adds(b, "{\"required\": true}");
		return 1;
	}
	buf_addc(b, '{');
	if (p->nvals <= ENUM_MAX) {
		sort_n(p->vals, p->nvals, sizeof(char *), cmp_cstr);
		buf_adds(b, "\"enum\": [");
		for (i = 0; i < p->nvals; i++) {
			if (i)
				buf_adds(b, ", ");
			json_str(b, p->vals[i]);
		}
		buf_addc(b, ']');
		buf_adds(note, "; ");
		comment_str(note, p->name);
		buf_printf(note, ": %zu distinct value%s in %lu", p->nvals,
		    p->nvals == 1 ? "" : "s", p->values);
	} else {
		struct buf pat;

		buf_init(&pat);
		covering_pattern(&pat, p);
		buf_adds(b, "\"pattern\": ");
		json_str(b, pat.p);
		buf_fini(&pat);
		buf_adds(note, "; ");
		comment_str(note, p->name);
		buf_printf(note, ": more than %d values in %lu, lengths "
		    "%zu-%zu", ENUM_MAX, p->values,
		    p->has_empty ? 0 : p->minlen, p->maxlen);
	}
	if (required)
		buf_adds(b, ", \"required\": true");
	buf_addc(b, '}');
	return 1;
}

static void
print_suggestion(struct suggest *s)
{
	struct buf b, rule, note;
	size_t i, j, k;
	int nrules;

	buf_init(&b);
	buf_printf(&b, "// whmgate policy suggest: %lu call%s of %zu client%s "
	    "in %lu records%s\n", s->calls, s->calls == 1 ? "" : "s", s->ncs,
	    s->ncs == 1 ? "" : "s", s->records,
	    s->o->successful ? " (only calls WHM answered with result 1)" : "");
	buf_adds(&b, "// Review before use: it allows what the trail shows, "
	    "no more.\n\"clients\": {\n");
	sort_n(s->cs, s->ncs, sizeof(*s->cs), cmp_sclient);
	for (i = 0; i < s->ncs; i++) {
		struct sclient *c = &s->cs[i];

		sort_n(c->es, c->nes, sizeof(*c->es), cmp_entry);
		buf_adds(&b, "  // ");
		comment_str(&b, c->id);      /* a forged trail's id */
		buf_printf(&b, ": %lu call%s\n  ", c->calls,
		    c->calls == 1 ? "" : "s");
		json_str(&b, c->id);
		buf_adds(&b, ": {\n    \"allow\": {\n");
		for (j = 0; j < c->nes; j++) {
			struct entry *e = &c->es[j];

			sort_n(e->ps, e->nps, sizeof(*e->ps), cmp_pstat);
			buf_init(&rule);
			buf_init(&note);
			nrules = 0;
			for (k = 0; k < e->nps; k++) {
				size_t mark = rule.len;

				buf_adds(&rule, nrules ? ",\n        " :
				    "\n        ");
				json_str(&rule, e->ps[k].name);
				buf_adds(&rule, ": ");
				if (pstat_rule(&rule, &note, e, &e->ps[k]))
					nrules++;
				else
					rule.len = mark;
			}
			buf_printf(&b, "      // %s: %lu call%s%s\n      ",
			    e->name, e->calls, e->calls == 1 ? "" : "s",
			    note.p ? note.p : "");
			json_str(&b, e->name);
			buf_adds(&b, ": {");
			if (rule.len)
				buf_add(&b, rule.p, rule.len);
			buf_adds(&b, nrules ? "\n      }" : "}");
			buf_adds(&b, j + 1 < c->nes ? ",\n" : "\n");
			buf_fini(&rule);
			buf_fini(&note);
		}
		buf_printf(&b, "    }\n  }%s\n", i + 1 < s->ncs ? "," : "");
	}
	buf_adds(&b, "}\n");
	fwrite(b.p, 1, b.len, stdout);
	buf_fini(&b);
}

static void
suggest_fini(struct suggest *s)
{
	size_t i, j, k, v;

	for (i = 0; i < s->ncs; i++) {
		for (j = 0; j < s->cs[i].nes; j++) {
			struct entry *e = &s->cs[i].es[j];

			for (k = 0; k < e->nps; k++) {
				for (v = 0; v < e->ps[k].nvals; v++)
					free(e->ps[k].vals[v]);
				free(e->ps[k].name);
			}
			free(e->ps);
			free(e->name);
		}
		free(s->cs[i].es);
		free(s->cs[i].id);
	}
	free(s->cs);
	for (i = 0; i < s->nok; i++)
		free(s->ok_ids[i]);
	free(s->ok_ids);
	arena_fini(&s->a);
}

static int
cmd_suggest(int argc, char **argv)
{
	struct suggest s;
	struct opts o;
	int rc = 0;

	if (parse_opts(argc, argv, &o, 0) == -1) {
		usage();
		opts_fini(&o);
		return EXIT_USAGE;
	}
	memset(&s, 0, sizeof(s));
	s.o = &o;
	arena_init(&s.a);
	/* Recorded calls passed whmgate's bounds when they were made;
	 * rebuilt, they carry api.version as well. */
	s.lim.max_params = (size_t)-1 / 4;
	s.lim.max_batch_calls = (size_t)-1 / 4;
	if (o.verify && verify_first(&o) == -1)
		rc = EXIT_USAGE;
	if (rc == 0 && o.successful) {
		if (walk(&o, collect_ok, &s) == -1)
			rc = EXIT_USAGE;
		sort_n(s.ok_ids, s.nok, sizeof(char *), cmp_str);
	}
	if (rc == 0 && walk(&o, on_suggest, &s) == -1)
		rc = EXIT_USAGE;
	if (rc == 0)
		print_suggestion(&s);
	suggest_fini(&s);
	opts_fini(&o);
	return rc;
}

/* ---- replay ---- */

struct flip {
	char *kind, *client, *function, *code, *example;
	unsigned long n;
};

struct replay {
	const struct opts *o;
	struct conf *conf;
	struct params_limits lim;
	struct arena a;
	struct flip *fl;
	size_t nfl;
	unsigned long records, calls, refuse, allow, unknown, skipped;
};

static void
add_flip(struct replay *p, const char *kind, const char *client,
    const char *fn, const char *code, const char *id)
{
	size_t i;

	for (i = 0; i < p->nfl; i++)
		if (strcmp(p->fl[i].kind, kind) == 0 &&
		    strcmp(p->fl[i].client, client) == 0 &&
		    strcmp(p->fl[i].function, fn) == 0 &&
		    strcmp(p->fl[i].code, code) == 0) {
			p->fl[i].n++;
			return;
		}
	p->fl = grow(p->fl, p->nfl, sizeof(*p->fl));
	p->fl[p->nfl].kind = xstrdup(kind);
	p->fl[p->nfl].client = xstrdup(client);
	p->fl[p->nfl].function = xstrdup(fn);
	p->fl[p->nfl].code = xstrdup(code);
	p->fl[p->nfl].example = xstrdup(id);
	p->fl[p->nfl].n = 1;
	p->nfl++;
}

static int
on_replay(void *arg, const char *file, unsigned long line,
    const struct record *r)
{
	struct replay *p = arg;
	const struct client *cl;
	struct decision d;
	struct call call;
	const char *why, *fn;
	int was;

	p->records++;
	if ((strcmp(r->type, "request") != 0 && strcmp(r->type, "deny") != 0) ||
	    !r->has_call || r->client == NULL || !want_client(p->o, r->client))
		return 0;
	/* The policy's verdict when the call was made: a request record
	 * went through; a deny record after the call was parsed was the
	 * policy's refusal, or a later step's (in-flight, audit). */
	was = strcmp(r->type, "request") == 0 ||
	    !record_policy_refusal(r->code);
	if (record_call(r, &p->a, &p->lim, &call, &why) == -1) {
		fprintf(stderr, "%s:%lu: skipped: %s\n", file, line, why);
		p->skipped++;
		goto out;
	}
	p->calls++;
	fn = call.rule_name;
	if ((cl = conf_client(p->conf, r->client)) == NULL) {
		memset(&d, 0, sizeof(d));
		d.code = "no_such_client";
	} else {
		policy_check_ex(cl, POLICY_ALLOW, &call, record_redacted, &d);
		if (d.allow && record_call_redacted_name(&call)) {
			d.allow = 0;
			d.unknown = 1;
		}
	}
	if (d.unknown) {
		p->unknown++;
		add_flip(p, "unknown", r->client, fn, was ? "was allowed" :
		    "was refused", r->id);
	} else if (was && !d.allow) {
		p->refuse++;
		add_flip(p, "would_refuse", r->client, fn, d.code, r->id);
	} else if (!was && d.allow) {
		p->allow++;
		add_flip(p, "would_allow", r->client, fn,
		    r->code ? r->code : "", r->id);
	}
out:
	arena_fini(&p->a);
	arena_init(&p->a);
	return 0;
}

static int
cmp_flip(const void *a, const void *b)
{
	const struct flip *x = a, *y = b;
	int c;

	if ((c = strcmp(x->kind, y->kind)) != 0 ||
	    (c = strcmp(x->client, y->client)) != 0 ||
	    (c = strcmp(x->function, y->function)) != 0)
		return c;
	return strcmp(x->code, y->code);
}

static int
cmd_replay(int argc, char **argv)
{
	struct replay p;
	struct opts o;
	size_t i;
	int rc = 0;

	if (parse_opts(argc, argv, &o, 1) == -1) {
		usage();
		opts_fini(&o);
		return EXIT_USAGE;
	}
	memset(&p, 0, sizeof(p));
	p.o = &o;
	if ((p.conf = load(o.file)) == NULL) {
		opts_fini(&o);
		return EXIT_USAGE;
	}
	p.lim.max_params = (size_t)-1 / 4;
	p.lim.max_batch_calls = (size_t)-1 / 4;
	arena_init(&p.a);
	if (o.verify && verify_first(&o) == -1)
		rc = EXIT_USAGE;
	if (rc == 0 && walk(&o, on_replay, &p) == -1)
		rc = EXIT_USAGE;
	if (rc == 0) {
		printf("replay of %lu record%s under %s: %lu call%s re-decided, "
		    "%lu would now be refused, %lu would now be allowed, "
		    "%lu unknown (a rule on a redacted value)%s\n", p.records,
		    p.records == 1 ? "" : "s", o.file, p.calls,
		    p.calls == 1 ? "" : "s", p.refuse, p.allow, p.unknown,
		    p.skipped ? ", some skipped (see above)" : "");
		sort_n(p.fl, p.nfl, sizeof(*p.fl), cmp_flip);
		for (i = 0; i < p.nfl; i++)
			printf("%s %s %s %s: %lu call%s (e.g. %s)\n",
			    p.fl[i].kind, p.fl[i].client, p.fl[i].function,
			    p.fl[i].code, p.fl[i].n, p.fl[i].n == 1 ? "" : "s",
			    p.fl[i].example);
		rc = p.refuse || p.allow ? 1 : 0;
	}
	for (i = 0; i < p.nfl; i++) {
		free(p.fl[i].kind);
		free(p.fl[i].client);
		free(p.fl[i].function);
		free(p.fl[i].code);
		free(p.fl[i].example);
	}
	free(p.fl);
	arena_fini(&p.a);
	conf_unref(p.conf);
	opts_fini(&o);
	return rc;
}

int
policy_tool_main(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "show") == 0)
		return cmd_show(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "suggest") == 0)
		return cmd_suggest(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "replay") == 0)
		return cmd_replay(argc - 1, argv + 1);
	usage();
	return EXIT_USAGE;
}
