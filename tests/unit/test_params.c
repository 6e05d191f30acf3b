/* test_params.c - form decoding, name-N, call_parse and call_encode
 * (SPEC section 4). */
#include <stdlib.h>

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
	arena_fini(&A);
	return unit_report();
}
