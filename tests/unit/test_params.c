/* test_params.c - form decoding, name-N, call_parse and call_encode
 * (SPEC section 4). */
#include <malloc.h>
#include <stdlib.h>
#include <time.h>

#include "params.h"
#include "unit.h"

static struct arena A;

/* Parses s into a fresh list; returns params_parse's result. */
static int
parse(struct params *ps, const char *s, const char **why)
{
	memset(ps, 0, sizeof(*ps));
	*why = NULL;
	return params_parse(&A, ps, s, strlen(s), why);
}

/* Builds a call from a query and an optional body, as conn.c does: both
 * are appended into one list, then call_parse. -2 if decoding failed. */
static int
mkcall(struct call *c, const char *fn, const char *query, const char *body,
    const char **why)
{
	memset(c, 0, sizeof(*c));
	*why = NULL;
	if (params_parse(&A, &c->params, query, strlen(query), why) == -1)
		return -2;
	if (body && params_parse(&A, &c->params, body, strlen(body), why) == -1)
		return -2;
	return call_parse(&A, c, fn, why);
}

static void
test_decoding(void)
{
	static const struct { const char *in, *name, *value; } ok[] = {
		{ "a=b+c", "a", "b c" },
		{ "a+b=c", "a b", "c" },
		{ "a=%41%42", "a", "AB" },
		{ "a=%2525", "a", "%25" },          /* decoded once only */
		{ "a=%2B", "a", "+" },
		{ "a=%26%3D", "a", "&=" },
		{ "a=b=c", "a", "b=c" },
		{ "a=", "a", "" },
		{ "a", "a", "" },                   /* no '=': empty value */
		{ "a=%e2%82%ac", "a", "\xe2\x82\xac" },
		{ "%75ser=x", "user", "x" },
		{ "a=%F0%9F%98%80", "a", "\xf0\x9f\x98\x80" },
	};
	static const char *const bad[] = {
		"a=%", "a=%4", "a=%zz", "a=%4g", "a=%g4", "%=b", "a%=b",
		"a=%00", "a%00=b", "a=x%00y",
		"a=%C0%AF",          /* overlong '/' */
		"a=%E0%80%AF",       /* overlong, 3 bytes */
		"a=%ED%A0%80",       /* surrogate U+D800 */
		"a=%80",             /* lone continuation byte */
		"a=x%BFy",
		"a=%E2%82",          /* truncated sequence */
		"a=%F4%90%80%80",    /* above U+10FFFF */
		"a=%FF", "a=\xff", "\xc3=b",
		"=b", "=", "a=1&=b", "&=",
	};
	struct params ps;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = parse(&ps, ok[i].in, &why);
		CHECK(rc == 0 && ps.n == 1);
		if (rc != 0 || ps.n != 1) {
			printf("  input %s: rc %d n %zu why %s\n", ok[i].in, rc,
			    ps.n, why ? why : "-");
			continue;
		}
		CHECK_STR(ps.v[0].name, ok[i].name);
		CHECK_STR(ps.v[0].value, ok[i].value);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(&ps, bad[i], &why);
		CHECK(rc == -1);
		if (rc != -1)
			printf("  accepted: %s\n", bad[i]);
		CHECK(rc == 0 || why != NULL);
	}

	/* Empty pieces are skipped; split on '&' only. */
	CHECK(parse(&ps, "&&a=1&&b=2;c=3&", &why) == 0);
	CHECK(ps.n == 2);
	if (ps.n == 2) {
		CHECK_STR(ps.v[0].name, "a");
		CHECK_STR(ps.v[1].name, "b");
		CHECK_STR(ps.v[1].value, "2;c=3");
	}
	CHECK(parse(&ps, "", &why) == 0 && ps.n == 0);
	CHECK(parse(&ps, "&", &why) == 0 && ps.n == 0);

	/* Appending: the second call adds to the same list. */
	CHECK(parse(&ps, "a=1", &why) == 0);
	CHECK(params_parse(&A, &ps, "b=2", 3, &why) == 0 && ps.n == 2);
	/* The length is honoured: bytes past len are not read. */
	CHECK(parse(&ps, "", &why) == 0);
	CHECK(params_parse(&A, &ps, "a=12&b=3", 4, &why) == 0 && ps.n == 1 &&
	    strcmp(ps.v[0].value, "12") == 0);

	CHECK(params_body_ok("a=b&c=d", 7));
	CHECK(!params_body_ok("a=b\r\n", 5));
	CHECK(!params_body_ok("a=b\nc", 5));
	CHECK(!params_body_ok("a=b\rc", 5));
	CHECK(!params_body_ok("a=\0b", 4));
}

static void
test_names(void)
{
	static const struct { const char *name, *base; int indexed; } t[] = {
		{ "user-2", "user", 1 },
		{ "user-02", "user", 1 },
		{ "user-123456", "user", 1 },
		{ "user-x", "user-x", 0 },
		{ "user-2x", "user-2x", 0 },
		{ "user-", "user-", 0 },
		{ "-5", "-5", 0 },
		{ "user2", "user2", 0 },
		{ "a-b-3", "a-b", 1 },
		{ "api.version-1", "api.version", 1 },
		{ "user", "user", 0 },
	};
	struct params ps;
	const char *why;
	char q[64];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(q, sizeof(q), "%s=v", t[i].name);
		CHECK(parse(&ps, q, &why) == 0 && ps.n == 1);
		if (ps.n != 1)
			continue;
		CHECK_STR(ps.v[0].name, t[i].name);
		CHECK_STR(ps.v[0].base, t[i].base);
		CHECK(ps.v[0].indexed == t[i].indexed);
	}
	CHECK(parse(&ps, "user=a&user-1=b&user-22=c&username=d", &why) == 0);
	CHECK(params_count(&ps, "user", 0) == 3);
	CHECK(params_count(&ps, "user", 1) == 1);
	CHECK(params_count(&ps, "username", 0) == 1);
	CHECK(params_count(&ps, "nobody", 0) == 0);
	CHECK_STR(params_get(&ps, "user"), "a");
	CHECK(params_get(&ps, "user-1") == NULL);   /* plain names only */
	CHECK(params_get(&ps, "use") == NULL);

	CHECK(params_valid_function("listaccts"));
	CHECK(params_valid_function("set_digest_auth_1"));
	CHECK(!params_valid_function(""));
	CHECK(!params_valid_function("ListAccts"));
	CHECK(!params_valid_function("list-accts"));
	CHECK(!params_valid_function("a/b"));
	CHECK(!params_valid_function("a.b"));
}

static void
test_duplicates_and_version(void)
{
	static const struct {
		const char *fn, *q, *body;
		int rc;
	} t[] = {
		{ "listaccts", "a=1&b=2", NULL, 0 },
		{ "listaccts", "a=1&a=2", NULL, -1 },
		{ "listaccts", "a=1&a=1", NULL, -1 },
		{ "listaccts", "a=1", "a=2", -1 },       /* query and body */
		{ "listaccts", "a=1", "b=2", 0 },
		{ "listaccts", "user=1&user-1=2", NULL, 0 },
		{ "listaccts", "user-1=1&user-1=2", NULL, -1 },
		{ "listaccts", "command=a&command=b", NULL, -1 },  /* not batch */
		{ "listaccts", "api.version=1", NULL, 0 },
		{ "listaccts", "api.version=0", NULL, -1 },
		{ "listaccts", "api.version=2", NULL, -1 },
		{ "listaccts", "api.version=", NULL, -1 },
		{ "listaccts", "api.version", NULL, -1 },
		{ "listaccts", "api.version=1.0", NULL, -1 },
		{ "listaccts", "api.version=+1", NULL, -1 },
		{ "listaccts", "api.version=1&api.version-1=0", NULL, -1 },
		{ "listaccts", "api.version-7=2", NULL, -1 },
		{ "listaccts", "api.version-7=1", NULL, 0 },
		{ "listaccts", "a=1", "api.version=0", -1 },
		{ "batch", "command=f%3Fapi.version%3D1", NULL, 0 },
		{ "batch", "command=f%3Fapi.version%3D0", NULL, -1 },
		{ "batch", "command=f%3Fapi.version-2%3D0", NULL, -1 },
		{ "batch", "command=g&command=f%3Fapi.version%3D2", NULL, -1 },
		{ "batch", "command-3=f%3Fapi.version%3D2", NULL, -1 },
		{ "batch", "command=f&api.version=2", NULL, -1 },
	};
	struct call c;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = mkcall(&c, t[i].fn, t[i].q, t[i].body, &why);
		CHECK(rc == t[i].rc);
		if (rc != t[i].rc)
			printf("  %s %s | %s: rc %d (%s)\n", t[i].fn, t[i].q,
			    t[i].body ? t[i].body : "", rc, why ? why : "-");
		if (rc == -1)
			CHECK(why != NULL);
	}
	CHECK(mkcall(&c, "listaccts", "a=1", NULL, &why) == 0);
	CHECK(c.add_api_version == 1 && c.kind == CALL_PLAIN);
	CHECK_STR(c.rule_name, "listaccts");
	CHECK(mkcall(&c, "listaccts", "a=1&api.version=1", NULL, &why) == 0);
	CHECK(c.add_api_version == 0);
	CHECK(mkcall(&c, "listaccts", "a=1", "api.version=1", &why) == 0);
	CHECK(c.add_api_version == 0);
}

/* Checks the functions of a batch's sub-calls, in order. */
static void
check_subs(const char *q, const char *const *want, size_t n)
{
	struct call c;
	const char *why;
	size_t i;
	int rc = mkcall(&c, "batch", q, NULL, &why);

	CHECK(rc == 0);
	CHECK(c.kind == CALL_BATCH);
	CHECK(c.nsubs == n);
	if (rc != 0 || c.nsubs != n) {
		printf("  batch %s: rc %d nsubs %zu (%s)\n", q, rc, c.nsubs,
		    why ? why : "-");
		return;
	}
	for (i = 0; i < n; i++)
		CHECK_STR(c.subs[i].function, want[i]);
}

static void
test_batch(void)
{
	static const char *const refused[] = {
		"command=a&command=b&command-1=c",   /* repeated + -N mixed */
		"command-1=c&command=a&command=b",
		"command-1=a&command-01=b",          /* same index twice */
		"command-0=a&command-00=b",
		"command-1=a&command-1=b",
		"x=1",                               /* no command */
		"command=ListAccts",                 /* sub-call names */
		"command=list-accts",
		"command=",
		"command=%3Fa%3D1",
		"command=..%2Fx",
		"command=a%20b",
		"command=f%3Fa%3D1%26a%3D2",         /* duplicate inside */
		"command=f%3Fa%3D%25zz",             /* bad escape inside */
		"command=f%3Fa%3D%2500",             /* NUL inside */
		"command=f%3F%3Dx",                  /* empty name inside */
		"command=f%3Fa%3D%25C0%25AF",        /* bad UTF-8 inside */
	};
	static const char *const two[] = { "a", "b" };
	static const char *const order[] = { "a", "b", "c", "j", "k" };
	struct call c;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		int rc = mkcall(&c, "batch", refused[i], NULL, &why);
		CHECK(rc == -1);
		if (rc != -1)
			printf("  batch accepted: %s\n", refused[i]);
	}
	check_subs("command=a&command=b", two, 2);
	check_subs("command=a&x=1&command=b", two, 2);
	check_subs("command-2=b&command-1=a", two, 2);
	check_subs("command-10=b&command-2=a", two, 2);   /* numeric order */
	check_subs("command-01=a&command-2=b", two, 2);
	/* Plain copies first in the order sent, then -N by number. */
	check_subs("command-2=j&command=a&command-1=b&command-10=k", (const
	    char *const[]){ "a", "b", "j", "k" }, 4);
	check_subs("command-9=j&command-3=b&command-10=k&command-4=c&command=a",
	    order, 5);

	/* Nested decoding: the value is decoded once as a parameter, then
	 * its arguments once more as their own form. */
	CHECK(mkcall(&c, "batch", "command=listaccts%3Fsearch%3Dbob%2Bx%26"
	    "searchtype%3Duser%26v%3D%2525", NULL, &why) == 0);
	CHECK(c.nsubs == 1);
	if (c.nsubs == 1) {
		const struct params *sp = &c.subs[0].params;
		CHECK_STR(c.subs[0].function, "listaccts");
		CHECK_STR(c.subs[0].rule_name, "listaccts");
		CHECK(sp->n == 3);
		CHECK_STR(params_get(sp, "search"), "bob x");
		CHECK_STR(params_get(sp, "searchtype"), "user");
		CHECK_STR(params_get(sp, "v"), "%");
	}
	/* Repeated command is batch's list form, but only there. */
	CHECK(mkcall(&c, "batch", "command=a", "command=b", &why) == 0);
	CHECK(c.nsubs == 2);
	CHECK(c.add_api_version == 1);
	/* A sub-call may repeat a name that the outer call also has. */
	CHECK(mkcall(&c, "batch", "command=f%3Fuser%3Da&user=b", NULL, &why)
	    == 0);
	/* A cpanel sub-call gets its own target. */
	CHECK(mkcall(&c, "batch", "command=cpanel%3Fcpanel_jsonapi_module%3D"
	    "Email%26cpanel_jsonapi_func%3Dlistpops%26user%3Dbob", NULL, &why)
	    == 0);
	if (c.nsubs == 1)
		CHECK_STR(c.subs[0].rule_name, "cpanel:Email::listpops");
	CHECK(mkcall(&c, "batch", "command=uapi_cpanel%3Fcpanel.module%3D"
	    "Email%26cpanel.function%3Dlist_pops", NULL, &why) == 0);
	if (c.nsubs == 1)
		CHECK_STR(c.subs[0].rule_name, "uapi_cpanel:Email::list_pops");
	CHECK(mkcall(&c, "batch", "command=cpanel%3Fcpanel_jsonapi_func%3Dx",
	    NULL, &why) == -1);
	CHECK(mkcall(&c, "batch", "command=uapi_cpanel%3Fcpanel.module%3DE%26"
	    "cpanel.function%3Df%26cpanel.user-1%3Dx", NULL, &why) == -1);
}

static void
test_cpanel(void)
{
	static const struct {
		const char *fn, *q;
		const char *rule, *mod, *func, *user;  /* rule NULL: refused */
	} t[] = {
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&cpanel_jsonapi_user=bob", "cpanel:Email::listpops",
		  "Email", "listpops", "bob" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&user=carol", "cpanel:Email::listpops", "Email",
		  "listpops", "carol" },
		{ "cpanel", "user=carol&cpanel_jsonapi_user=bob&"
		  "cpanel_jsonapi_module=Email&cpanel_jsonapi_func=listpops",
		  "cpanel:Email::listpops", "Email", "listpops", "bob" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops", "cpanel:Email::listpops", "Email", "listpops", NULL },
		{ "uapi_cpanel", "cpanel.module=Email&cpanel.function=list_pops"
		  "&cpanel.user=bob", "uapi_cpanel:Email::list_pops", "Email",
		  "list_pops", "bob" },
		{ "uapi_cpanel", "cpanel.module=Email&cpanel.function=list_pops"
		  "&user=bob", "uapi_cpanel:Email::list_pops", "Email",
		  "list_pops", NULL },          /* no 'user' fallback for UAPI */
		/* refused */
		{ "cpanel", "cpanel_jsonapi_func=listpops", NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=Email", NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=&cpanel_jsonapi_func=x",
		  NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=Em-ail&cpanel_jsonapi_func=x",
		  NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=Email%3A%3Ax&"
		  "cpanel_jsonapi_func=x", NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func=a b",
		  NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_module-1="
		  "Ftp&cpanel_jsonapi_func=x", NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module-0=Email&cpanel_jsonapi_func=x",
		  NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=E&cpanel_jsonapi_func=x&"
		  "cpanel_jsonapi_func-2=y", NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=E&cpanel_jsonapi_func=x&"
		  "cpanel_jsonapi_user=a&cpanel_jsonapi_user-1=b", NULL, 0, 0, 0 },
		{ "cpanel", "cpanel_jsonapi_module=E&cpanel_jsonapi_func=x&"
		  "user=a&user-1=b", NULL, 0, 0, 0 },
		{ "uapi_cpanel", "cpanel.function=list_pops", NULL, 0, 0, 0 },
		{ "uapi_cpanel", "cpanel.module=Email", NULL, 0, 0, 0 },
		{ "uapi_cpanel", "cpanel.module=Email&cpanel.function=x%2Fy",
		  NULL, 0, 0, 0 },
		{ "uapi_cpanel", "cpanel.module=E&cpanel.function=f&"
		  "cpanel.user=a&cpanel.user-1=b", NULL, 0, 0, 0 },
		{ "uapi_cpanel", "cpanel.module=E&cpanel.module-1=F&"
		  "cpanel.function=f", NULL, 0, 0, 0 },
		{ "uapi_cpanel", "cpanel.module=E&cpanel.function=f&"
		  "cpanel.function-9=g", NULL, 0, 0, 0 },
	};
	struct call c;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = mkcall(&c, t[i].fn, t[i].q, NULL, &why);
		if (t[i].rule == NULL) {
			CHECK(rc == -1);
			if (rc != -1)
				printf("  accepted: %s?%s\n", t[i].fn, t[i].q);
			continue;
		}
		CHECK(rc == 0);
		if (rc != 0) {
			printf("  refused: %s?%s (%s)\n", t[i].fn, t[i].q, why);
			continue;
		}
		CHECK(c.kind == (t[i].fn[0] == 'c' ? CALL_CPANEL : CALL_UAPI));
		CHECK_STR(c.rule_name, t[i].rule);
		CHECK_STR(c.module, t[i].mod);
		CHECK_STR(c.func, t[i].func);
		if (t[i].user)
			CHECK_STR(c.cuser, t[i].user);
		else
			CHECK(c.cuser == NULL);
	}
}

/* Builds a call from a query and a body with explicit limits, as conn.c
 * does; returns -1 with *status (400 or 413) on a refusal. */
static int
mkcall_lim(struct call *c, const char *fn, const char *query,
    const char *body, size_t max_params, size_t max_batch, int *status,
    const char **why)
{
	struct params_limits lim = { max_params, max_batch };

	memset(c, 0, sizeof(*c));
	*why = NULL;
	*status = 0;
	if (params_parse_limited(&A, &c->params, query, strlen(query), &lim,
	    status, why) == -1)
		return -1;
	if (body && params_parse_limited(&A, &c->params, body, strlen(body),
	    &lim, status, why) == -1)
		return -1;
	return call_parse_limited(&A, c, fn, &lim, status, why);
}

/* A query of n pieces "p0=v&p1=v..." (names distinct), in s. */
static void
many(struct buf *s, const char *prefix, size_t n)
{
	size_t i;

	s->len = 0;
	for (i = 0; i < n; i++)
		buf_printf(s, "%s%s%zu=v", i ? "&" : "", prefix, i);
	if (n == 0)
		buf_adds(s, "");
}

static void
test_limits(void)
{
	static const struct {
		const char *fn, *q, *body;
		size_t max_params, max_batch;
		int status;                 /* 0: accepted */
	} t[] = {
		{ "listaccts", "a&b&c", NULL, 3, 64, 0 },
		{ "listaccts", "a&b&c&d", NULL, 3, 64, 413 },
		{ "listaccts", "a&&b&&&c&", NULL, 3, 64, 0 },  /* empty pieces */
		{ "listaccts", "a&b", "c", 3, 64, 0 },
		{ "listaccts", "a&b", "c&d", 3, 64, 413 },     /* query + body */
		/* Counted before decoding: the count wins over a bad escape
		 * or a duplicate in the same form. */
		{ "listaccts", "a=%zz&b&c&d", NULL, 3, 64, 413 },
		{ "listaccts", "a&a&b&c", NULL, 3, 64, 413 },
		{ "listaccts", "a&a&b", NULL, 3, 64, 400 },
		/* Batch: sub-calls... */
		{ "batch", "command=a&command=b", NULL, 1024, 2, 0 },
		{ "batch", "command=a&command=b&command=c", NULL, 1024, 2, 413 },
		{ "batch", "command-0=a&command-1=b&command-7=c", NULL, 1024, 2,
		  413 },
		{ "batch", "command=a", "command=b&command=c", 1024, 2, 413 },
		/* ...and their arguments, with the outer parameters. */
		{ "batch", "command=f%3Fx%3D1%26y%3D2", NULL, 3, 64, 0 },
		{ "batch", "command=f%3Fx%3D1%26y%3D2%26z", NULL, 3, 64, 413 },
		{ "batch", "command=f%3Fx%26y&command=g", NULL, 4, 64, 0 },
		{ "batch", "command=f%3Fx%26y%26z&command=g", NULL, 4, 64, 413 },
		{ "batch", "command=f%3Fx%26%26y%26&command=g", NULL, 4, 64, 0 },
		/* The counts come before the 400s of the outer call and of
		 * any sub-call. */
		{ "batch", "command=a&command=b&x=1&x=2", NULL, 1024, 1, 413 },
		{ "batch", "command=f%3Fx%3D%25zz&command=g%3Fa%26b%26c",
		  NULL, 4, 64, 413 },
		{ "batch", "command=f%3Fx%3D%25zz&command=g%3Fa", NULL, 4, 64,
		  400 },
		{ "batch", "command=a&command=b&command-1=c", NULL, 1024, 2, 413 },
		{ "batch", "command=a&command=b&command-1=c", NULL, 1024, 3, 400 },
	};
	struct call c;
	struct buf q;
	const char *why;
	size_t i;
	int rc, status;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = mkcall_lim(&c, t[i].fn, t[i].q, t[i].body, t[i].max_params,
		    t[i].max_batch, &status, &why);
		CHECK(t[i].status ? rc == -1 && status == t[i].status : rc == 0);
		if (t[i].status ? rc != -1 || status != t[i].status : rc != 0)
			printf("  %s?%s | %s (%zu, %zu): rc %d status %d (%s)\n",
			    t[i].fn, t[i].q, t[i].body ? t[i].body : "",
			    t[i].max_params, t[i].max_batch, rc, status,
			    why ? why : "-");
		if (rc == -1)
			CHECK(why != NULL);
	}

	/* Nothing is added when the count is over: no piece is decoded. */
	{
		struct params ps;
		struct params_limits lim = { 3, 64 };
		memset(&ps, 0, sizeof(ps));
		CHECK(params_parse_limited(&A, &ps, "a&b", 3, &lim, &status,
		    &why) == 0 && ps.n == 2);
		CHECK(params_parse_limited(&A, &ps, "c&d", 3, &lim, &status,
		    &why) == -1 && status == 413 && ps.n == 2);
		CHECK(params_parse_limited(&A, &ps, "c", 1, &lim, &status,
		    &why) == 0 && ps.n == 3);
		CHECK_STR(ps.v[2].name, "c");
	}

	/* A call whose list is already over the limit (built with other
	 * limits) is refused by call_parse_limited too. */
	CHECK(mkcall_lim(&c, "listaccts", "a&b&c", NULL, 3, 64, &status,
	    &why) == 0);
	{
		struct params_limits lim = { 2, 64 };
		CHECK(call_parse_limited(&A, &c, "listaccts", &lim, &status,
		    &why) == -1 && status == 413);
	}

	/* The defaults: 1024 parameters, 64 sub-calls, also through the
	 * plain params_parse/call_parse. */
	buf_init(&q);
	many(&q, "p", PARAMS_MAX_DEFAULT);
	CHECK(mkcall(&c, "listaccts", q.p, NULL, &why) == 0 &&
	    c.params.n == PARAMS_MAX_DEFAULT);
	many(&q, "p", PARAMS_MAX_DEFAULT + 1);
	CHECK(mkcall(&c, "listaccts", q.p, NULL, &why) == -2);
	CHECK(mkcall_lim(&c, "listaccts", q.p, NULL, PARAMS_MAX_DEFAULT,
	    PARAMS_BATCH_MAX_DEFAULT, &status, &why) == -1 && status == 413);
	CHECK(mkcall_lim(&c, "listaccts", q.p, NULL, PARAMS_MAX_DEFAULT + 1,
	    PARAMS_BATCH_MAX_DEFAULT, &status, &why) == 0);
	q.len = 0;
	for (i = 0; i < PARAMS_BATCH_MAX_DEFAULT; i++)
		buf_printf(&q, "%scommand=listaccts", i ? "&" : "");
	/* Batch's list form: the same command many times is allowed. */
	CHECK(mkcall(&c, "batch", q.p, NULL, &why) == 0 &&
	    c.nsubs == PARAMS_BATCH_MAX_DEFAULT);
	buf_adds(&q, "&command=listaccts");
	CHECK(mkcall(&c, "batch", q.p, NULL, &why) == -1);
	CHECK(mkcall_lim(&c, "batch", q.p, NULL, PARAMS_MAX_DEFAULT,
	    PARAMS_BATCH_MAX_DEFAULT, &status, &why) == -1 && status == 413);
	/* 16 sub-calls of 63 arguments: 16 + 1008 = 1024 in all. */
	q.len = 0;
	for (i = 0; i < 16; i++) {
		size_t k;
		buf_printf(&q, "%scommand=f%%3F", i ? "&" : "");
		for (k = 0; k < 63; k++)
			buf_printf(&q, "%sa%zu", k ? "%26" : "", k);
	}
	CHECK(mkcall_lim(&c, "batch", q.p, NULL, PARAMS_MAX_DEFAULT,
	    PARAMS_BATCH_MAX_DEFAULT, &status, &why) == 0 && c.nsubs == 16);
	buf_adds(&q, "%26one_more");
	CHECK(mkcall_lim(&c, "batch", q.p, NULL, PARAMS_MAX_DEFAULT,
	    PARAMS_BATCH_MAX_DEFAULT, &status, &why) == -1 && status == 413);
	/* Other refusals stay 400. */
	CHECK(mkcall_lim(&c, "listaccts", "a=1", "a=2", 1024, 64, &status,
	    &why) == -1 && status == 400);
	CHECK(mkcall_lim(&c, "listaccts", "a=%zz", NULL, 1024, 64, &status,
	    &why) == -1 && status == 400);
	buf_fini(&q);
}

static void
test_xmlapi(void)
{
	static const struct { const char *fn, *q; } refused[] = {
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&cpanel_jsonapi_user=bob&cpanel_xmlapi_user=carol" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&cpanel_xmlapi_module=Ftp" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&cpanel_xmlapi_func=delpop" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&cpanel_xmlapi_apiversion=1" },
		{ "cpanel", "cpanel_xmlapi_module=Email&cpanel_xmlapi_func="
		  "listpops&cpanel_xmlapi_user=bob" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&cpanel_xmlapi_user-1=carol" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&CPANEL_XMLAPI_USER=carol" },
		{ "cpanel", "cpanel_jsonapi_module=Email&cpanel_jsonapi_func="
		  "listpops&cpanel%5Fxmlapi%5Fuser=carol" },
		{ "uapi_cpanel", "cpanel.module=Email&cpanel.function=list_pops&"
		  "cpanel.user=bob&cpanel_xmlapi_user=carol" },
		{ "listaccts", "cpanel_xmlapi_user=carol" },
		{ "batch", "command=cpanel%3Fcpanel_jsonapi_module%3DEmail%26"
		  "cpanel_jsonapi_func%3Dlistpops%26cpanel_jsonapi_user%3Dbob%26"
		  "cpanel_xmlapi_user%3Dcarol" },
		{ "batch", "command=listaccts&command=cpanel%3Fcpanel_xmlapi_"
		  "module%3DEmail%26cpanel_jsonapi_module%3DEmail%26"
		  "cpanel_jsonapi_func%3Dlistpops" },
		{ "batch", "command=listaccts%3Fcpanel_xmlapi_apiversion%3D2" },
		{ "batch", "command=listaccts&cpanel_xmlapi_func=x" },
	};
	struct call c;
	const char *why;
	size_t i;
	int rc, status;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		rc = mkcall_lim(&c, refused[i].fn, refused[i].q, NULL, 1024, 64,
		    &status, &why);
		CHECK(rc == -1 && status == 400);
		if (rc != -1)
			printf("  accepted: %s?%s\n", refused[i].fn,
			    refused[i].q);
		else
			CHECK(why != NULL && strstr(why, "xmlapi") != NULL);
	}
	/* The same calls with only the checked spelling pass. */
	CHECK(mkcall(&c, "cpanel", "cpanel_jsonapi_module=Email&"
	    "cpanel_jsonapi_func=listpops&cpanel_jsonapi_user=bob&"
	    "cpanel_jsonapi_apiversion=2", NULL, &why) == 0);
	CHECK(mkcall(&c, "batch", "command=cpanel%3Fcpanel_jsonapi_module%3D"
	    "Email%26cpanel_jsonapi_func%3Dlistpops%26cpanel_jsonapi_user%3D"
	    "bob", NULL, &why) == 0);
	/* In the body too. */
	CHECK(mkcall(&c, "cpanel", "cpanel_jsonapi_module=Email&"
	    "cpanel_jsonapi_func=listpops", "cpanel_xmlapi_user=carol", &why)
	    == -1);
}

/* A small deterministic generator for the property tests. */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned
rng(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* Duplicate detection by sorting agrees with comparing every pair, on
 * random lists where repeats are common (and 'command' in a batch). */
static void
test_duplicates_property(void)
{
	static const char *const alpha[] = { "a", "b", "-", "1", "command" };
	struct buf q, name;
	struct call c;
	const char **names;
	const char *why;
	size_t round, n, i, j, disagree = 0, dups = 0;
	int rc, want, batch, status;

	buf_init(&q);
	buf_init(&name);
	names = calloc(64, sizeof(*names));
	for (round = 0; round < 3000 && names; round++) {
		batch = rng(2);
		n = 1 + rng(12);
		q.len = 0;
		if (batch)
			buf_adds(&q, "command=listaccts");
		for (i = 0; i < n; i++) {
			name.len = 0;
			buf_adds(&name, "x");
			for (j = 1 + rng(4); j > 0; j--)
				buf_adds(&name, alpha[rng(5)]);
			names[i] = arena_strdup(&A, name.p);
			buf_printf(&q, "%s%s=%zu", q.len ? "&" : "", names[i], i);
		}
		want = 0;
		for (i = 0; i < n && !want; i++)
			for (j = 0; j < i; j++)
				if (strcmp(names[i], names[j]) == 0) {
					want = 1;
					break;
				}
		rc = mkcall_lim(&c, batch ? "batch" : "listaccts", q.p, NULL,
		    1024, 64, &status, &why);
		if ((rc == -1) != want) {
			disagree++;
			printf("  %s?%s: rc %d (%s)\n", batch ? "batch" :
			    "listaccts", q.p, rc, why ? why : "-");
		}
		dups += want;
	}
	/* Large lists: one repeat anywhere among 20,000 names is found. */
	{
		static const size_t at[] = { 0, 1, 9999, 19998 };
		size_t a;
		many(&q, "n", 20000);
		CHECK(mkcall_lim(&c, "listaccts", q.p, NULL, 1u << 20, 64,
		    &status, &why) == 0);
		for (a = 0; a < sizeof(at) / sizeof(at[0]); a++) {
			many(&q, "n", 20000);
			buf_printf(&q, "&n%zu=again", at[a]);
			CHECK(mkcall_lim(&c, "listaccts", q.p, NULL, 1u << 20,
			    64, &status, &why) == -1 && status == 400);
		}
	}
	CHECK(names != NULL);
	CHECK(disagree == 0);
	CHECK(dups > 300 && dups < 2700);    /* both cases were exercised */
	if (dups <= 300 || dups >= 2700)
		printf("  %zu of 3000 lists had a repeat\n", dups);
	free(names);
	buf_fini(&q);
	buf_fini(&name);
}

/* Batch order by the merge sort: plain copies in the order sent, then
 * command-N by number, for many commands in a shuffled order. */
static void
test_batch_order_property(void)
{
	enum { N = 200 };
	unsigned perm[N];
	struct buf q;
	struct call c;
	const char *why;
	size_t i, bad = 0;
	int status;

	for (i = 0; i < N; i++)
		perm[i] = (unsigned)i;
	for (i = N - 1; i > 0; i--) {
		unsigned k = rng((unsigned)i + 1), t = perm[i];
		perm[i] = perm[k];
		perm[k] = t;
	}
	buf_init(&q);
	/* Indexes 0..N-1 spelt with leading zeros now and then; one plain
	 * 'command' may stand among them (a single plain copy mixes). */
	for (i = 0; i < N; i++)
		buf_printf(&q, "%scommand-%s%u=f%u", i ? "&" : "",
		    rng(4) ? "" : "00", perm[i], perm[i]);
	buf_adds(&q, "&command=first");
	CHECK(mkcall_lim(&c, "batch", q.p, NULL, 4096, 4096, &status, &why)
	    == 0);
	CHECK(c.nsubs == N + 1);
	if (c.nsubs == N + 1) {
		char want[16];
		CHECK_STR(c.subs[0].function, "first");
		for (i = 0; i < N; i++) {
			snprintf(want, sizeof(want), "f%zu", i);
			bad += strcmp(c.subs[i + 1].function, want) != 0;
		}
		CHECK(bad == 0);
	}
	/* Many plain copies keep the order they were sent in. */
	q.len = 0;
	for (i = 0; i < N; i++)
		buf_printf(&q, "%scommand=f%u", i ? "&" : "", perm[i]);
	CHECK(mkcall_lim(&c, "batch", q.p, NULL, 4096, 4096, &status, &why)
	    == 0 && c.nsubs == N);
	for (i = 0, bad = 0; i < c.nsubs; i++) {
		char want[16];
		snprintf(want, sizeof(want), "f%u", perm[i]);
		bad += strcmp(c.subs[i].function, want) != 0;
	}
	CHECK(bad == 0);
	buf_fini(&q);
}

static double
cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Bytes malloc has handed out (heap and mmap); 0 where a sanitizer
 * replaces malloc and mallinfo2 says nothing. */
static size_t
heap_bytes(void)
{
	struct mallinfo2 m = mallinfo2();

	return m.uordblks + m.hblkhd;
}

/* Issue 16's worst batch, scaled: nsub sub-calls, each with nparams
 * distinct three-character names and no values. */
static void
worst_batch(struct buf *b, size_t nsub, size_t nparams)
{
	static const char al[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	size_t s, i;

	b->len = 0;
	for (s = 0; s < nsub; s++) {
		buf_adds(b, s ? "&command=listpkgs%3F" : "command=listpkgs%3F");
		for (i = 0; i < nparams; i++) {
			if (i)
				buf_adds(b, "%26");
			buf_addc(b, al[i / 1296 % 36]);
			buf_addc(b, al[i / 36 % 36]);
			buf_addc(b, al[i % 36]);
		}
	}
}

/* One flat list of n distinct names with long shared prefixes, the
 * comparison sort's costliest names per byte. */
static void
flat_list(struct buf *b, size_t n)
{
	size_t i;

	b->len = 0;
	for (i = 0; i < n; i++)
		buf_printf(b, "%spppppppppppppppppppppppppppppppp%zu=v",
		    i ? "&" : "", n - i);
}

/* The least CPU seconds over runs, and the heap bytes held once parsed,
 * for parsing q (as conn.c does) with limits large enough to admit it. */
static void
parse_cost(const struct buf *q, const char *fn, double *cpu, size_t *mem)
{
	struct params_limits lim = { 1u << 20, 1u << 16 };
	struct arena a;
	struct call c;
	const char *why = NULL;
	double t0, t;
	size_t h0;
	int run, rc, status;

	*cpu = 1e9;
	*mem = 0;
	for (run = 0; run < 7; run++) {
		arena_init(&a);
		memset(&c, 0, sizeof(c));
		h0 = heap_bytes();
		t0 = cpu_now();
		rc = params_parse_limited(&a, &c.params, q->p, q->len, &lim,
		    &status, &why);
		if (rc == 0)
			rc = call_parse_limited(&a, &c, fn, &lim, &status, &why);
		t = cpu_now() - t0;
		if (heap_bytes() > h0)
			*mem = heap_bytes() - h0;
		arena_fini(&a);
		if (rc != 0) {
			printf("  parse failed: %s\n", why ? why : "-");
			*cpu = -1;
			return;
		}
		if (t < *cpu)
			*cpu = t;
	}
}

/* Property: parse time and memory per byte of request do not grow with
 * the request. A quadratic duplicate scan makes the time per byte grow
 * with the parameters per list: 16x the parameters, 16x the time per
 * byte (the scan of before issue 16: 10-13x on the batch shape here).
 * CPU time, not wall clock, the least of 7 runs; the bound (3x) is loose
 * against noise: 1.0x measured here for both shapes. */
static void
test_linear_cost(void)
{
	static const struct { const char *what, *fn; size_t nsub, n; } t[] = {
		{ "batch 64x64 -> 64x1024", "batch", 64, 64 },
		{ "flat 1024 -> 16384", "listaccts", 0, 1024 },
	};
	struct buf q;
	double cpu1, cpu16, per1, per16;
	size_t mem1, mem16, len1, len16, i;

	/* Keep freed memory in the heap, so that every run but the first
	 * reuses pages: the first touch of fresh pages (page faults, costly
	 * in a VM) is linear in the memory, measured on its own below, and
	 * would otherwise blur the comparison of the algorithms. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	buf_init(&q);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].nsub)
			worst_batch(&q, t[i].nsub, t[i].n);
		else
			flat_list(&q, t[i].n);
		len1 = q.len;
		parse_cost(&q, t[i].fn, &cpu1, &mem1);
		if (t[i].nsub)
			worst_batch(&q, t[i].nsub, 16 * t[i].n);
		else
			flat_list(&q, 16 * t[i].n);
		len16 = q.len;
		parse_cost(&q, t[i].fn, &cpu16, &mem16);
		CHECK(cpu1 > 0 && cpu16 > 0);
		per1 = cpu1 / (double)len1;
		per16 = cpu16 / (double)len16;
		printf("  %s: %zu -> %zu bytes, %.2f -> %.2f ms (%.1f -> %.1f "
		    "ns/byte), heap %.1f -> %.1f bytes/byte\n", t[i].what, len1,
		    len16, cpu1 * 1e3, cpu16 * 1e3, per1 * 1e9, per16 * 1e9,
		    (double)mem1 / (double)len1, (double)mem16 / (double)len16);
		CHECK(per16 < 3 * per1);
#if defined(__SANITIZE_ADDRESS__)
		printf("  (heap bytes not measured under ASan)\n");
#else
		/* Memory: the same small multiple of the request at both
		 * sizes (struct param is 32 bytes; these names are 4-5). */
		CHECK(mem1 > 0 && mem16 > 0);
		CHECK((double)mem16 / (double)len16 <
		    1.25 * (double)mem1 / (double)len1);
		CHECK(mem16 < 12 * len16);
#endif
	}
	buf_fini(&q);
}

/* Encodes the call built from fn?q and compares with want. */
static void
check_encode(const char *fn, const char *q, const char *want)
{
	struct call c;
	struct buf out;
	const char *why;

	buf_init(&out);
	CHECK(mkcall(&c, fn, q, NULL, &why) == 0);
	CHECK(call_encode(&c, &out) == 0);
	CHECK_STR(out.p ? out.p : "", want);
	buf_fini(&out);
}

static void
test_encode(void)
{
	struct buf out;

	check_encode("listaccts", "search=a+b&x=%26", "api.version=1&"
	    "search=a%20b&x=%26");
	check_encode("listaccts", "", "api.version=1");
	check_encode("listaccts", "a=1&api.version=1", "a=1&api.version=1");
	check_encode("listaccts", "flag", "api.version=1&flag=");
	/* Reserved and non-ASCII bytes are escaped; unreserved ones not. */
	check_encode("listaccts", "n+m=a%26b%3Dc%2Bd%25%2F%3F%23%3B%3A%40%C3%A9"
	    "-._~Z9", "api.version=1&n%20m=a%26b%3Dc%2Bd%25%2F%3F%23%3B%3A%40"
	    "%C3%A9-._~Z9");
	/* Batch: commands leave the outer list and come back re-encoded as
	 * command-0.. in the order WHM runs them. */
	check_encode("batch", "command-2=b%3Fx%3D1&foo=bar&command=a",
	    "api.version=1&foo=bar&command-0=a&command-1=b%3Fx%3D1");
	check_encode("batch", "command-10=k&command-2=j", "api.version=1&"
	    "command-0=j&command-1=k");
	check_encode("batch", "command=f%3Fq%3Da%2520b%26w%3D%25C3%25A9",
	    "api.version=1&command-0=f%3Fq%3Da%2520b%26w%3D%25C3%25A9");
	check_encode("batch", "command=f%3Fq%3Da%2Bb",
	    "api.version=1&command-0=f%3Fq%3Da%2520b");
	check_encode("cpanel", "cpanel_jsonapi_module=Email&"
	    "cpanel_jsonapi_func=listpops&user=a%40b", "api.version=1&"
	    "cpanel_jsonapi_module=Email&cpanel_jsonapi_func=listpops&"
	    "user=a%40b");

	/* call_encode appends to what is already in the buffer. */
	{
		struct call c;
		const char *why;
		buf_init(&out);
		buf_adds(&out, "x=1&");
		CHECK(mkcall(&c, "listaccts", "a=1", NULL, &why) == 0);
		CHECK(call_encode(&c, &out) == 0);
		CHECK_STR(out.p, "x=1&api.version=1&a=1");
		buf_fini(&out);
	}
	buf_init(&out);
	CHECK(form_escape(&out, "a b&\x01\xff") == 0);
	CHECK_STR(out.p, "a%20b%26%01%FF");
	buf_fini(&out);

	/* Round trip: what whmgate forwards decodes to what it checked. */
	{
		struct call c, d;
		const char *why;
		size_t i;
		buf_init(&out);
		CHECK(mkcall(&c, "listaccts", "a=%25%26%3D+%2B&b=%E2%82%AC&c",
		    NULL, &why) == 0);
		CHECK(call_encode(&c, &out) == 0);
		CHECK(mkcall(&d, "listaccts", out.p, NULL, &why) == 0);
		CHECK(d.params.n == c.params.n + 1);
		for (i = 0; i < c.params.n && i + 1 < d.params.n; i++) {
			CHECK_STR(d.params.v[i + 1].name, c.params.v[i].name);
			CHECK_STR(d.params.v[i + 1].value, c.params.v[i].value);
		}
		buf_fini(&out);
	}
}

int
main(void)
{
	arena_init(&A);
	test_decoding();
	test_names();
	test_duplicates_and_version();
	test_batch();
	test_cpanel();
	test_encode();
	test_limits();
	test_xmlapi();
	test_duplicates_property();
	test_batch_order_property();
	test_linear_cost();
	arena_fini(&A);
	return unit_report();
}
