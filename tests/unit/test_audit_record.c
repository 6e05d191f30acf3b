/* test_audit_record.c - the record builder (audit_record.c) on its own:
 * no file, no writer thread, no loop. Each record is built into a
 * generator, closed here with the brace the writer would add, and read
 * back with yajl's tree parser. */
#define _GNU_SOURCE             /* memmem */
#include <stdlib.h>
#include <yajl/yajl_tree.h>

#include "audit_record.h"
#include "outcome.h"
#include "params.h"
#include "unit.h"
#include "unit_conf.h"

#define WKEY "whmg_Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg"

static struct audit_gen *gen;
static struct arena ar;
static char line[1 << 22];
static size_t line_len;

static void
event_init(struct audit_event *ev, const struct conf *c, const char *type,
    const struct call *call)
{
	memset(ev, 0, sizeof(*ev));
	ev->conf = c;
	ev->type = type;
	ev->id = "req-1";
	ev->client_id = "billing";
	ev->ip = "10.0.0.7";
	ev->port = 40000;
	ev->auth = "bearer";
	ev->method = "GET";
	ev->path = "/json-api/createacct";
	ev->function = call ? call->function : "createacct";
	ev->whm_user = "root";
	ev->call = call;
	ev->with_params = call != NULL;
	ev->decision = -1;
	ev->up_status = -1;
	ev->ms = -1;
}

/* Builds ev's record and parses it; the caller frees the tree. The line
 * (with the closing brace the writer adds) stays in `line`. */
static yajl_val
build(const struct audit_key *k, const struct audit_event *ev)
{
	const char *p;
	size_t n;
	yajl_val v;
	char errbuf[128];

	CHECK(audit_gen_event(gen, k, ev) == 0);
	p = audit_gen_bytes(gen, &n);
	CHECK(p != NULL && n > 0 && n + 2 < sizeof(line));
	if (p == NULL || n + 2 >= sizeof(line))
		return NULL;
	memcpy(line, p, n);
	line[n] = '}';
	line[n + 1] = '\0';
	line_len = n + 1;
	CHECK(memchr(line, '\n', line_len) == NULL);
	v = yajl_tree_parse(line, errbuf, sizeof(errbuf));
	CHECK(v != NULL && YAJL_IS_OBJECT(v));
	if (v == NULL)
		printf("  not JSON (%s): %.200s\n", errbuf, line);
	return v;
}

static struct call *
call_of(const char *function, const char *q)
{
	struct call *c = arena_alloc(&ar, sizeof(*c));
	const char *why = NULL;

	memset(c, 0, sizeof(*c));
	CHECK(params_parse(&ar, &c->params, q, strlen(q), &why) == 0);
	CHECK(call_parse(&ar, c, function, &why) == 0);
	if (why)
		printf("  %s?%.80s: %s\n", function, q, why);
	return c;
}

static const char *
str_at(yajl_val v, const char **path)
{
	yajl_val s = v ? yajl_tree_get(v, path, yajl_t_string) : NULL;

	return s ? s->u.string : "(absent)";
}

#define AT(v, ...) str_at(v, (const char *[]){ __VA_ARGS__, NULL })

static const char *
num_at(yajl_val v, const char **path)
{
	yajl_val n = v ? yajl_tree_get(v, path, yajl_t_number) : NULL;

	return n ? n->u.number.r : "(absent)";
}

#define NUM_AT(v, ...) num_at(v, (const char *[]){ __VA_ARGS__, NULL })

static int
has(const char *s)
{
	return memmem(line, line_len, s, strlen(s)) != NULL;
}

/* The fields of a request record, in order, and the name rule. */
static void
test_request(const struct conf *c)
{
	struct audit_event ev;
	yajl_val v;

	event_init(&ev, c, "request", call_of("createacct",
	    "username=cust1&password=hunter2&plan=basic&contactemail=a%40b&"
	    "note=" WKEY "&Session-2=s3cr3t"));
	ev.decision = 1;
	ev.rule = "$.clients.billing.allow.createacct";
	v = build(NULL, &ev);
	CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
	CHECK(has("\"instance\":\"unit-1\",\"type\":\"request\",\"id\":\"req-1\","
	    "\"client\":{\"id\":\"billing\",\"ip\":\"10.0.0.7\",\"port\":40000,"
	    "\"auth\":\"bearer\"},\"http\":{\"method\":\"GET\",\"path\":"
	    "\"/json-api/createacct\"},\"whm\":{\"function\":\"createacct\","
	    "\"user\":\"root\",\"target\":\"cust1\",\"params\":{\"api.version\":"
	    "\"1\",\"username\":\"cust1\",\"password\":\"[REDACTED]\",\"plan\":"
	    "\"basic\",\"contactemail\":\"[REDACTED]\",\"note\":\"[REDACTED]\","
	    "\"Session-2\":\"[REDACTED]\"}},\"decision\":{\"allow\":true,"
	    "\"rule\":\"$.clients.billing.allow.createacct\",\"code\":null,"
	    "\"reason\":null}}"));
	CHECK(!has("hunter2") && !has("s3cr3t") && !has(WKEY) && !has("a@b"));
	yajl_tree_free(v);
}

/* With a key, redacted values are keyed hashes an auditor can check. */
static void
test_hmac_values(const struct conf *c)
{
	unsigned char k[] = "unit-key";
	struct audit_key key = { k, 8 };
	struct audit_event ev;
	unsigned char h[32];
	char want[12 + 65];
	yajl_val v;

	event_init(&ev, c, "request", call_of("createacct",
	    "username=cust1&password=hunter2"));
	v = build(&key, &ev);
	audit_hash(&key, "hunter2", 7, h);
	memcpy(want, "hmac-sha256:", 12);
	hex_encode(h, 32, want + 12);
	CHECK_STR(AT(v, "whm", "params", "password"), want);
	yajl_tree_free(v);
}

/* A response record: outcome, upstream block, numbers without printf. */
static void
test_response(const struct conf *c)
{
	static const char body[] = "{\"metadata\":{\"result\":0,\"reason\":"
	    "\"Account does not exist.\"}}";
	struct audit_event ev;
	struct outcome o;
	yajl_val v;

	CHECK(outcome_init(&o) == 0);
	outcome_feed(&o, body, sizeof(body) - 1);
	outcome_finish(&o);
	event_init(&ev, c, "response", call_of("removeacct", "user=cust1"));
	ev.with_params = 0;
	ev.status = 200;
	ev.outcome = &o;
	ev.up_status = 200;
	ev.up_ms = 1.5;
	ev.up_bytes = sizeof(body) - 1;
	ev.ms = 2.25;
	v = build(NULL, &ev);
	CHECK_STR(NUM_AT(v, "whm", "result"), "0");
	CHECK_STR(AT(v, "whm", "reason"), "Account does not exist.");
	CHECK_STR(NUM_AT(v, "http", "status"), "200");
	CHECK_STR(NUM_AT(v, "upstream", "ms"), "1.500");
	CHECK_STR(NUM_AT(v, "ms"), "2.250");
	CHECK(!has("\"params\""));
	yajl_tree_free(v);
	outcome_fini(&o);
}

/* A deny record without a parsed call: a refused path and a reason that
 * is not UTF-8 (replaced, the record kept whole). */
static void
test_deny(const struct conf *c)
{
	struct audit_event ev;
	yajl_val v;

	event_init(&ev, c, "deny", NULL);
	ev.function = NULL;
	ev.path = "/json-api/a\x01" "b";
	ev.status = 400;
	ev.decision = 0;
	ev.code = "bad_request";
	ev.reason = "bad \xc3";
	ev.ms = 0.1;
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "http", "path"), "/json-api/a?b");
	CHECK_STR(AT(v, "decision", "reason"), "bad ?");
	CHECK(!has("\"whm\""));
	yajl_tree_free(v);
	/* A key in the path is not recorded. */
	event_init(&ev, c, "deny", NULL);
	ev.path = "/json-api/" WKEY;
	ev.status = 400;
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "http", "path"), "[REDACTED]");
	yajl_tree_free(v);
}

/* A batch: commands move to calls, sub-call arguments follow the same
 * rules; a cpanel call names its target. */
static void
test_calls(const struct conf *c)
{
	struct audit_event ev;
	yajl_val v, calls;

	event_init(&ev, c, "request", call_of("batch",
	    "command=createacct%3Fusername%3Dcust9%26password%3Dsub-secret&"
	    "command=listaccts"));
	v = build(NULL, &ev);
	calls = yajl_tree_get(v, (const char *[]){ "whm", "calls", NULL },
	    yajl_t_array);
	CHECK(calls && calls->u.array.len == 2);
	if (calls && calls->u.array.len == 2) {
		CHECK_STR(AT(calls->u.array.values[0], "params", "password"),
		    "[REDACTED]");
		CHECK_STR(AT(calls->u.array.values[0], "target"), "cust9");
		CHECK_STR(AT(calls->u.array.values[1], "function"), "listaccts");
	}
	CHECK(!has("sub-secret") && !has("\"command\""));
	yajl_tree_free(v);

	event_init(&ev, c, "request", call_of("uapi_cpanel",
	    "cpanel.user=cust1&cpanel.module=Email&cpanel.function=list_pops"));
	v = build(NULL, &ev);
	CHECK(has("\"calls\":[{\"function\":\"uapi_cpanel\",\"module\":\"Email\","
	    "\"func\":\"list_pops\",\"user\":\"cust1\"}]"));
	yajl_tree_free(v);
}

/* A system record, as the writer's start record is made. */
static int
system_rec(const char *instance, const char *event, ...)
{
	va_list ap;
	int rc;

	va_start(ap, event);
	rc = audit_gen_system(gen, instance, event, ap);
	va_end(ap);
	return rc;
}

static void
test_system(void)
{
	const char *p;
	size_t n;

	CHECK(system_rec("gw-1", "start", "version", "1", "torn", NULL,
	    NULL) == 0);
	p = audit_gen_bytes(gen, &n);
	CHECK(n > 40 && memmem(p, n, "\"instance\":\"gw-1\",\"type\":\"system\","
	    "\"event\":\"start\",\"version\":\"1\",\"torn\":null", 71) != NULL);
}

/* U+2028 and U+2029 are escaped: a line reader that splits there (as
 * JavaScript's and Python's str.splitlines do) still sees one record. */
static void
test_line_separators(const struct conf *c)
{
	struct audit_event ev;
	yajl_val v;

	event_init(&ev, c, "request", call_of("listaccts",
	    "search=a%E2%80%A8b%E2%80%A9c&searchtype=%E2%80%A8"));
	v = build(NULL, &ev);
	CHECK(memmem(line, line_len, "\xe2\x80\xa8", 3) == NULL);
	CHECK(memmem(line, line_len, "\xe2\x80\xa9", 3) == NULL);
	CHECK(has("\"search\":\"a\\u2028b\\u2029c\",\"searchtype\":\"\\u2028\""));
	CHECK_STR(AT(v, "whm", "params", "search"), "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c");
	yajl_tree_free(v);
	/* Other three-byte characters starting with E2 stay as they are. */
	event_init(&ev, c, "request", call_of("listaccts", "search=%E2%82%AC%E2%80%A8"));
	v = build(NULL, &ev);
	CHECK(has("\"search\":\"\xe2\x82\xac\\u2028\""));
	yajl_tree_free(v);
}

/* The positional arguments of a cPanel API 1 call are redacted; those
 * of other API versions and other functions keep the name rule. */
static void
test_positional(const struct conf *c)
{
	struct audit_event ev;
	yajl_val v, calls;

	event_init(&ev, c, "request", call_of("cpanel",
	    "cpanel_jsonapi_module=Email&cpanel_jsonapi_func=addpop&"
	    "cpanel_jsonapi_user=cust1&cpanel_jsonapi_apiversion=1&"
	    "arg-0=box&arg-1=ApiOnePassw0rd"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "arg-0"), "[REDACTED]");
	CHECK_STR(AT(v, "whm", "params", "arg-1"), "[REDACTED]");
	CHECK(!has("ApiOnePassw0rd"));
	yajl_tree_free(v);
	/* WHM may read 01 as 1: anything but exactly 2 or 3 counts. */
	event_init(&ev, c, "request", call_of("cpanel",
	    "cpanel_jsonapi_module=Email&cpanel_jsonapi_func=addpop&"
	    "cpanel_jsonapi_user=cust1&cpanel_jsonapi_apiversion=01&arg-0=x1"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "arg-0"), "[REDACTED]");
	yajl_tree_free(v);
	event_init(&ev, c, "request", call_of("cpanel",
	    "cpanel_jsonapi_module=Email&cpanel_jsonapi_func=addpop&"
	    "cpanel_jsonapi_user=cust1&cpanel_jsonapi_apiversion=2&arg-0=box"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "arg-0"), "box");
	yajl_tree_free(v);
	event_init(&ev, c, "request", call_of("listaccts", "arg-0=box"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "arg-0"), "box");
	yajl_tree_free(v);
	/* Inside a batch, by the sub-call's own function and version. */
	event_init(&ev, c, "request", call_of("batch",
	    "command=cpanel%3Fcpanel_jsonapi_module%3DEmail%26"
	    "cpanel_jsonapi_func%3Daddpop%26cpanel_jsonapi_user%3Dcust1%26"
	    "cpanel_jsonapi_apiversion%3D1%26arg-0%3Dbox%26arg-1%3DSubPw0rd&"
	    "command=listaccts%3Farg-0%3Dvisible"));
	v = build(NULL, &ev);
	calls = yajl_tree_get(v, (const char *[]){ "whm", "calls", NULL },
	    yajl_t_array);
	CHECK(calls && calls->u.array.len == 2);
	if (calls && calls->u.array.len == 2) {
		CHECK_STR(AT(calls->u.array.values[0], "params", "arg-1"),
		    "[REDACTED]");
		CHECK_STR(AT(calls->u.array.values[1], "params", "arg-0"),
		    "visible");
	}
	CHECK(!has("SubPw0rd"));
	yajl_tree_free(v);
}

/* The key rule holds for a string percent-decoded once or more. */
static void
test_encoded_secrets(const struct conf *c)
{
	struct audit_event ev;
	yajl_val v;

	CHECK(audit_secret_value(c, "/json-api/%77hmg_Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg") == 1);
	CHECK(audit_secret_value(c, "%2577%2568mg_Zm9vYmFyYmF6cXV4cXV1eGZv") == 1);
	CHECK(audit_secret_value(c, "%77hmg_short") == 0);
	CHECK(audit_secret_value(c, "100%") == 0);
	event_init(&ev, c, "deny", NULL);
	ev.path = "/json-api/%77hmg_Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg";
	ev.status = 400;
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "http", "path"), "[REDACTED]");
	yajl_tree_free(v);
	/* In a value (params are decoded already: a value that still holds
	 * an escape was sent double-encoded) and in a cpanel target. */
	event_init(&ev, c, "request", call_of("listaccts",
	    "search=%2577hmg_Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "search"), "[REDACTED]");
	yajl_tree_free(v);
	event_init(&ev, c, "request", call_of("uapi_cpanel",
	    "cpanel.user=cust1&cpanel.module=" WKEY "&cpanel.function=f"));
	v = build(NULL, &ev);
	CHECK(!has(WKEY));
	yajl_tree_free(v);
}

/* The bound on a record: a huge value is cut with a marker, too many
 * parameters or sub-calls are left out, and the record says so. */
static void
test_bound(const struct conf *c)
{
	struct audit_event ev;
	struct buf q;
	yajl_val v;
	const char *s;
	size_t i;

	buf_init(&q);
	buf_adds(&q, "search=");
	for (i = 0; i < 333333; i++)
		buf_adds(&q, "%01");
	event_init(&ev, c, "deny", call_of("listaccts", q.p));
	ev.decision = 0;
	v = build(NULL, &ev);
	CHECK(line_len + 100 < AUDIT_RECORD_MAX);
	s = AT(v, "whm", "params", "search");
	CHECK(strlen(s) < AUDIT_STRING_MAX + 64);
	CHECK(strstr(s, "[cut by whmgate: 333333 bytes in all]") != NULL);
	CHECK_STR(NUM_AT(v, "cut", "strings"), "1");
	CHECK_STR(NUM_AT(v, "cut", "params"), "0");
	yajl_tree_free(v);

	/* 1000 parameters of 1300 control bytes: 7.8 MB escaped, unbounded. */
	q.len = 0;
	for (i = 0; i < 1000; i++) {
		size_t k;
		buf_printf(&q, "%sp%zu=", i ? "&" : "", i);
		for (k = 0; k < 1300; k++)
			buf_adds(&q, "%02");
	}
	event_init(&ev, c, "deny", call_of("listaccts", q.p));
	v = build(NULL, &ev);
	CHECK(line_len + 100 < AUDIT_RECORD_MAX);
	CHECK(atoi(NUM_AT(v, "cut", "params")) > 800);
	CHECK(yajl_tree_get(v, (const char *[]){ "whm", "params", "p0", NULL },
	    yajl_t_string) != NULL);
	yajl_tree_free(v);

	/* A batch of 60 sub-calls of 60 KB each. */
	q.len = 0;
	for (i = 0; i < 60; i++) {
		size_t k;
		buf_printf(&q, "%scommand=listaccts%%3Fsearch%%3D", i ? "&" : "");
		for (k = 0; k < 20000; k++)
			buf_adds(&q, "%2501");
	}
	event_init(&ev, c, "request", call_of("batch", q.p));
	v = build(NULL, &ev);
	CHECK(line_len + 100 < AUDIT_RECORD_MAX);
	CHECK(atoi(NUM_AT(v, "cut", "calls")) > 10);
	CHECK(atoi(NUM_AT(v, "cut", "strings")) > 10);
	yajl_tree_free(v);

	/* Short records carry no cut field. */
	event_init(&ev, c, "request", call_of("listaccts", "search=x"));
	v = build(NULL, &ev);
	CHECK(!has("\"cut\""));
	yajl_tree_free(v);
	buf_fini(&q);
}

/* A parameter pinned by an enum in the allow entry that decided is
 * recorded as is when its value is one of the enum's; batch sub-calls
 * and cpanel arguments follow their own entry. */
static void
test_enum_pins(void)
{
	static const char clients[] = "{\"billing\": {\"keys\": [\"sha256:"
	    "1111111111111111111111111111111111111111111111111111111111111111\"],"
	    " \"whm_user\": \"root\", \"whm_token\": {\"env\": \"T\"}, \"allow\": {"
	    "\"createacct\": {\"showpass\": {\"enum\": [\"n\"]}},"
	    "\"passwd\": {},"
	    "\"batch\": {},"
	    "\"cpanel:Email::addpop\": {\"arg\": {\"enum\": [\"box\"]}}}}}";
	struct conf *c = unit_conf(NULL, clients);
	struct audit_event ev;
	yajl_val v, calls;

	CHECK(c != NULL);
	if (c == NULL)
		return;
	event_init(&ev, c, "request", call_of("createacct",
	    "username=cust1&showpass=n&password=pw1&showpass-1=n"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "showpass"), "n");
	CHECK_STR(AT(v, "whm", "params", "showpass-1"), "n");
	CHECK_STR(AT(v, "whm", "params", "password"), "[REDACTED]");
	yajl_tree_free(v);
	/* A refused value is not public; nor is one for another client or
	 * in a call the entry did not decide. */
	event_init(&ev, c, "deny", call_of("createacct", "showpass=secretish"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "showpass"), "[REDACTED]");
	yajl_tree_free(v);
	event_init(&ev, c, "request", call_of("createacct", "showpass=n"));
	ev.client_id = "other";
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "showpass"), "[REDACTED]");
	yajl_tree_free(v);
	event_init(&ev, c, "request", call_of("passwd", "showpass=n"));
	v = build(NULL, &ev);
	CHECK_STR(AT(v, "whm", "params", "showpass"), "[REDACTED]");
	yajl_tree_free(v);
	/* Sub-calls by their own entries. */
	event_init(&ev, c, "request", call_of("batch",
	    "command=createacct%3Fusername%3Dx%26showpass%3Dn&"
	    "command=passwd%3Fshowpass%3Dn&"
	    "command=cpanel%3Fcpanel_jsonapi_module%3DEmail%26"
	    "cpanel_jsonapi_func%3Daddpop%26cpanel_jsonapi_user%3Dcust1%26"
	    "cpanel_jsonapi_apiversion%3D1%26arg-0%3Dbox%26arg-1%3DPw0rd"));
	v = build(NULL, &ev);
	calls = yajl_tree_get(v, (const char *[]){ "whm", "calls", NULL },
	    yajl_t_array);
	CHECK(calls && calls->u.array.len == 3);
	if (calls && calls->u.array.len == 3) {
		CHECK_STR(AT(calls->u.array.values[0], "params", "showpass"), "n");
		CHECK_STR(AT(calls->u.array.values[1], "params", "showpass"),
		    "[REDACTED]");
		CHECK_STR(AT(calls->u.array.values[2], "params", "arg-0"), "box");
		CHECK_STR(AT(calls->u.array.values[2], "params", "arg-1"),
		    "[REDACTED]");
	}
	yajl_tree_free(v);
	conf_unref(c);
}

static void
test_names(const struct conf *c)
{
	CHECK(audit_redacted_name(c, "newpass") == 1);
	CHECK(audit_redacted_name(c, "contactemail") == 1);   /* audit.redact */
	CHECK(audit_redacted_name(NULL, "contactemail") == 0);
	CHECK(audit_redacted_name(c, "username") == 0);
	CHECK(audit_secret_value(c, "x" WKEY) == 1);
	CHECK(audit_secret_value(c, "whmg_short") == 0);
	CHECK(audit_secret_value(c, "cust1") == 0);
}

int
main(void)
{
	struct conf *c;

	c = unit_conf("\"instance\": \"unit-1\", \"audit\": {\"redact\": "
	    "[\"contactemail\"]}", "{}");
	CHECK(c != NULL);
	gen = audit_gen_new();
	CHECK(gen != NULL);
	arena_init(&ar);
	if (c && gen) {
		test_names(c);
		test_request(c);
		test_hmac_values(c);
		test_response(c);
		test_deny(c);
		test_calls(c);
		test_system();
		test_line_separators(c);
		test_positional(c);
		test_encoded_secrets(c);
		test_bound(c);
		test_enum_pins();
	}
	arena_fini(&ar);
	audit_gen_free(gen);
	conf_unref(c);
	return unit_report();
}
