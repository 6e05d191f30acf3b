/* test_outcome.c - WHM's verdict read from a response body while it is
 * relayed: metadata.result/reason, the inner verdict of uapi_cpanel
 * (data.uapi.status, errors[0]) and of cpanel (cPanel API 1/2 answers),
 * batch sub-results. */
#include <stdlib.h>

#include "outcome.h"
#include "unit.h"
#include "util.h"

struct ocase {
	const char *what, *body;
	size_t len;               /* 0: strlen */
	int result, uapi;
	const char *reason;       /* NULL: has_reason 0 */
	int failed;
	int nsubs, subs[3];
	enum outcome_kind kind;   /* 0: OUTCOME_PLAIN */
};

static const struct ocase cases[] = {
	{ "metadata first", "{\"metadata\":{\"result\":1,\"reason\":\"OK\","
	  "\"version\":1,\"command\":\"listaccts\"},\"data\":{\"acct\":[]}}",
	  0, 1, -1, "OK", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "metadata last", "{\"data\":{\"acct\":[{\"user\":\"a\"}]},\"metadata\":"
	  "{\"version\":1,\"reason\":\"Access denied\",\"result\":0}}",
	  0, 0, -1, "Access denied", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "whitespace", " \n{ \"metadata\" : { \"result\" : 0 , \"reason\" :"
	  " \"no\" } }\n", 0, 0, -1, "no", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "escaped reason", "{\"metadata\":{\"result\":0,\"reason\":"
	  "\"a \\\"b\\\" \\u00e9\"}}", 0, 0, -1, "a \"b\" \xc3\xa9", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "decoy before", "{\"data\":{\"metadata\":{\"result\":1,\"reason\":"
	  "\"decoy\"}},\"metadata\":{\"result\":0,\"reason\":\"real\"}}",
	  0, 0, -1, "real", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "decoy after", "{\"metadata\":{\"result\":0,\"reason\":\"real\"},"
	  "\"data\":{\"acct\":[{\"metadata\":{\"result\":1,\"reason\":"
	  "\"decoy\"}}]}}", 0, 0, -1, "real", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "decoy inside metadata", "{\"metadata\":{\"x\":{\"result\":1,"
	  "\"reason\":\"decoy\"},\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "object under result", "{\"metadata\":{\"result\":{\"v\":0},"
	  "\"reason\":[\"decoy\"]}}", 0, -1, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "decoy in an array", "{\"data\":[{\"metadata\":{\"result\":0}}],"
	  "\"metadata\":{\"result\":1}}", 0, 1, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "root array", "[{\"metadata\":{\"result\":1,\"reason\":\"x\"}}]",
	  0, -1, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "long key", "{\"metadata_and_more_text\":{\"result\":1},"
	  "\"metadata\":{\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "key with NUL", "{\"metadata\":{\"result\":0,\"reason\":\"real\"},"
	  "\"metadata\\u0000\":{\"result\":1,\"reason\":\"decoy\"}}",
	  0, 0, -1, "real", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "result in a string", "{\"metadata\":{\"result\":\"0\"}}",
	  0, 0, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	/* uapi_cpanel: the UAPI call's verdict, not the wrapper's "OK" */
	{ "uapi", "{\"metadata\":{\"result\":1,\"reason\":\"OK\"},\"data\":"
	  "{\"uapi\":{\"errors\":[\"no such user\"],\"status\":0}}}",
	  0, 0, 0, "no such user", 0, 0, { 0 }, OUTCOME_UAPI },
	{ "uapi ok", "{\"data\":{\"uapi\":{\"status\":1,\"data\":{\"status\":0}}},"
	  "\"metadata\":{\"result\":1}}", 0, 1, 1, NULL, 0, 0, { 0 },
	  OUTCOME_UAPI },
	{ "uapi decoy", "{\"data\":{\"x\":{\"uapi\":{\"status\":1}},\"uapi\":"
	  "{\"status\":0}}}", 0, 0, 0, NULL, 0, 0, { 0 }, OUTCOME_UAPI },
	{ "batch", "{\"data\":{\"result\":[{\"metadata\":{\"result\":1}},"
	  "{\"data\":{\"metadata\":{\"result\":1}},\"metadata\":{\"result\":0,"
	  "\"reason\":\"x\"}},{\"data\":[1,2,{}],\"metadata\":{\"result\":1}}]},"
	  "\"metadata\":{\"result\":1,\"reason\":\"OK\"}}",
	  0, 1, -1, "OK", 0, 3, { 1, 0, 1 }, OUTCOME_BATCH },
	{ "batch sub without metadata", "{\"data\":{\"result\":[{\"x\":1},"
	  "{\"metadata\":{\"result\":0}}]},\"metadata\":{\"result\":0}}",
	  0, 0, -1, NULL, 0, 2, { -1, 0 }, OUTCOME_BATCH },
	/* uapi_cpanel sub-calls: the UAPI verdict, in either order, unless
	 * WHM failed the sub-call; a uapi nested deeper is no verdict */
	{ "batch uapi sub-calls", "{\"data\":{\"result\":[{\"metadata\":"
	  "{\"result\":1,\"reason\":\"OK\"},\"data\":{\"uapi\":{\"errors\":"
	  "[\"The user \\\"root\\\" does not exist.\"],\"status\":0}}},"
	  "{\"data\":{\"uapi\":{\"status\":1}},\"metadata\":{\"result\":0}},"
	  "{\"data\":{\"x\":{\"uapi\":{\"status\":0}}},\"metadata\":"
	  "{\"result\":1}}]},\"metadata\":{\"result\":1,\"reason\":\"OK\"}}",
	  0, 1, -1, "OK", 0, 3, { 0, 0, 1 }, OUTCOME_BATCH },
	{ "batch uapi status before metadata", "{\"data\":{\"result\":[{\"data\":"
	  "{\"uapi\":{\"status\":0}},\"metadata\":{\"result\":1}},{\"data\":"
	  "{\"uapi\":{\"status\":1}}},{\"data\":{\"uapi\":{\"status\":1}},"
	  "\"metadata\":{\"result\":1}}]}}",
	  0, -1, -1, NULL, 0, 3, { 0, 1, 1 }, OUTCOME_BATCH },
	{ "uapi sub-calls read only for batch", "{\"data\":{\"result\":[{\"data\":"
	  "{\"uapi\":{\"status\":0}},\"metadata\":{\"result\":1}}]},"
	  "\"metadata\":{\"result\":1}}", 0, 1, -1, NULL, 0, 0, { 0 },
	  OUTCOME_PLAIN },
	{ "HTML", "<html><body>502 Bad Gateway</body></html>",
	  0, -1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	{ "truncated", "{\"metadata\":{\"result\":1,\"reason\":\"OK\"},\"data\":{",
	  0, 1, -1, "OK", 1, 0, { 0 }, OUTCOME_PLAIN },
	{ "trailing garbage", "{\"metadata\":{\"result\":1}}x",
	  0, 1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	{ "two documents", "{\"metadata\":{\"result\":1}}{\"metadata\":"
	  "{\"result\":0}}", 0, 1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	{ "empty body", "", 0, -1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	{ "NUL byte", "{\"metadata\":{\"result\":1}\0}", 26, 1, -1, NULL, 1,
	  0, { 0 }, OUTCOME_PLAIN },
};

/* Real-shaped answers (see the comments in outcome.c and WHM.md). */
static const struct ocase shape_cases[] = {
	{ "API 2 ok (listpops)",
	  "{\"cpanelresult\":{\"apiversion\":2,\"func\":\"listpops\",\"module\":"
	  "\"Email\",\"data\":[{\"email\":\"info@cust1.example\",\"login\":"
	  "\"info@cust1.example\"}],\"event\":{\"result\":1}}}",
	  0, 1, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 failed item and error (addpop)",
	  "{\"cpanelresult\":{\"apiversion\":2,\"error\":\"The account info@cu"
	  "st1.example already exists!\",\"data\":[{\"reason\":\"The account "
	  "info@cust1.example already exists!\",\"result\":0}],\"func\":"
	  "\"addpop\",\"event\":{\"result\":1},\"module\":\"Email\"}}",
	  0, 0, -1,
	  "The account info@cust1.example already exists!",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 second item failed, no error",
	  "{\"cpanelresult\":{\"data\":[{\"result\":1,\"reason\":\"\"},{\"reason\":"
	  "\"no such address\",\"result\":\"0\"},{\"result\":0,\"reason\":"
	  "\"later\"}],\"event\":{\"result\":1},\"apiversion\":2}}",
	  0, 0, -1,
	  "no such address",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 error beats an item's reason",
	  "{\"cpanelresult\":{\"data\":[{\"reason\":\"item why\",\"result\":"
	  "0}],\"event\":{\"result\":1},\"error\":\"top why\"}}",
	  0, 0, -1,
	  "top why",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 failed item without reason",
	  "{\"cpanelresult\":{\"data\":[{\"result\":0}],\"event\":{\"result\":"
	  "1}}}",
	  0, 0, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 refused (WHM.md)",
	  "{\"cpanelresult\":{\"apiversion\":\"2\",\"error\":\"Access denied\","
	  "\"data\":{\"reason\":\"Access denied\",\"result\":\"0\"},\"type\":"
	  "\"text\"}}",
	  0, 0, -1,
	  "Access denied",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 refused, error last",
	  "{\"cpanelresult\":{\"data\":{\"result\":\"0\",\"reason\":\"The user “ro"
	  "ot” is not associated with a cPanel account and cannot call "
	  "cPanel API 2\"},\"type\":\"text\",\"error\":\"The user “root” is not"
	  " associated with a cPanel account and cannot call cPanel API"
	  " 2\"}}",
	  0, 0, -1,
	  "The user “root” is not associated with a cPanel account and "
	  "cannot call cPanel API 2",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 event failed",
	  "{\"cpanelresult\":{\"event\":{\"reason\":\"Could not find function\""
	  ",\"result\":0},\"data\":[],\"apiversion\":2}}",
	  0, 0, -1,
	  "Could not find function",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 decoys nested in items",
	  "{\"cpanelresult\":{\"data\":[{\"name\":\"x\",\"error\":\"decoy\","
	  "\"sub\":{\"result\":0,\"reason\":\"decoy\"},\"list\":[{\"result\":"
	  "0}]}],\"event\":{\"result\":1}}}",
	  0, 1, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 2 empty error",
	  "{\"cpanelresult\":{\"error\":\"\",\"event\":{\"result\":1},\"data\":"
	  "[]}}",
	  0, 1, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 1 output 0 is no verdict",
	  "{\"apiversion\":\"1\",\"type\":\"event\",\"module\":\"Email\",\"func\":"
	  "\"getdiskusage\",\"source\":\"module\",\"data\":{\"result\":\"0\"},"
	  "\"event\":{\"result\":1}}",
	  0, 1, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 1 in cpanelresult, output 0",
	  "{\"cpanelresult\":{\"apiversion\":\"1\",\"type\":\"event\",\"data\":"
	  "{\"result\":\"0\"},\"event\":{\"result\":1}}}",
	  0, 1, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "API 1 refused, bare (cpsrvd)",
	  "{\"data\":{\"reason\":\"User parameter is invalid or was not supp"
	  "lied\",\"result\":\"0\"},\"type\":\"text\",\"error\":\"User parameter is"
	  " invalid or was not supplied\"}",
	  0, 0, -1,
	  "User parameter is invalid or was not supplied",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "UAPI through cpanel, failed",
	  "{\"apiversion\":3,\"func\":\"list_pops\",\"module\":\"Email\","
	  "\"result\":{\"errors\":[\"The user \\\"root\\\" does not exist.\","
	  "\"second\"],\"status\":0,\"data\":null,\"messages\":null,\"metadata\":"
	  "{}}}",
	  0, 0, -1,
	  "The user \"root\" does not exist.",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "UAPI through cpanel, ok",
	  "{\"apiversion\":3,\"func\":\"list_pops\",\"module\":\"Email\","
	  "\"result\":{\"errors\":null,\"status\":1,\"data\":[{\"email\":"
	  "\"a\",\"errors\":[\"decoy\"]}],\"metadata\":{}}}",
	  0, 1, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "cpanel: WHM's refusal wins",
	  "{\"cpanelresult\":{\"error\":\"inner\",\"event\":{\"result\":0}},"
	  "\"metadata\":{\"result\":0,\"reason\":\"Permission denied\"}}",
	  0, 0, -1,
	  "Permission denied",
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "cpanel: no verdict",
	  "{\"cpanelresult\":{\"apiversion\":2,\"data\":[]}}",
	  0, -1, -1,
	  NULL,
	  0, 0, { 0 }, OUTCOME_CPANEL },
	{ "cpanel shapes ignored for plain calls",
	  "{\"cpanelresult\":{\"error\":\"x\",\"event\":{\"result\":0}},\"metadata"
	  "\":{\"result\":1,\"reason\":\"OK\"}}",
	  0, 1, -1,
	  "OK",
	  0, 0, { 0 }, OUTCOME_PLAIN },
	{ "uapi_cpanel failed (WHM's envelope)",
	  "{\"data\":{\"uapi\":{\"warnings\":null,\"metadata\":{},\"messages\":"
	  "null,\"errors\":[\"The user \\\"root\\\" does not exist.\"],"
	  "\"data\":null,\"status\":0}},\"metadata\":{\"version\":1,\"reason\":"
	  "\"OK\",\"result\":1,\"command\":\"uapi_cpanel\"}}",
	  0, 0, 0,
	  "The user \"root\" does not exist.",
	  0, 0, { 0 }, OUTCOME_UAPI },
	{ "uapi_cpanel failed, metadata first",
	  "{\"metadata\":{\"version\":1,\"reason\":\"OK\",\"result\":1,\"command\":"
	  "\"uapi_cpanel\"},\"data\":{\"uapi\":{\"status\":0,\"errors\":[\"first\","
	  "\"second\"]}}}",
	  0, 0, 0,
	  "first",
	  0, 0, { 0 }, OUTCOME_UAPI },
	{ "uapi_cpanel ok keeps WHM's reason",
	  "{\"data\":{\"uapi\":{\"status\":1,\"errors\":null,\"data\":[{\"email\":"
	  "\"info@cust1.example\"}]}},\"metadata\":{\"result\":1,\"reason\":"
	  "\"OK\"}}",
	  0, 1, 1,
	  "OK",
	  0, 0, { 0 }, OUTCOME_UAPI },
	{ "uapi_cpanel decoys in uapi.data",
	  "{\"data\":{\"uapi\":{\"data\":{\"errors\":[\"decoy\"],\"status\":"
	  "1},\"status\":0,\"errors\":[\"real\"]}}}",
	  0, 0, 0,
	  "real",
	  0, 0, { 0 }, OUTCOME_UAPI },
	{ "uapi_cpanel refused by WHM",
	  "{\"metadata\":{\"result\":0,\"reason\":\"You do not have access to "
	  "an account named “x”.\"}}",
	  0, 0, 0,
	  "You do not have access to an account named “x”.",
	  0, 0, { 0 }, OUTCOME_UAPI },
	{ "uapi_cpanel failed, no errors",
	  "{\"data\":{\"uapi\":{\"status\":0,\"errors\":[]}},\"metadata\":"
	  "{\"result\":1,\"reason\":\"OK\"}}",
	  0, 0, 0,
	  NULL,
	  0, 0, { 0 }, OUTCOME_UAPI },
	{ "uapi shape ignored for plain calls",
	  "{\"data\":{\"uapi\":{\"status\":0,\"errors\":[\"x\"]}},\"metadata\":"
	  "{\"result\":1,\"reason\":\"OK\"}}",
	  0, 1, -1,
	  "OK",
	  0, 0, { 0 }, OUTCOME_PLAIN },
};

/* Bodies for the skip of data: what the skipper must step over exactly. */
static const struct ocase skip_cases[] = {
	{ "brackets and quotes in strings", "{\"data\":{\"a\":\"}]{[\\\"\\\\\","
	  "\"b\":[1,{\"c\":\"]\"}]},\"metadata\":{\"result\":0,\"reason\":\"r\"}}",
	  0, 0, -1, "r", 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "scalar data", "{\"data\":12 ,\"metadata\":{\"result\":1}}", 0, 1, -1,
	  NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "null data last", "{\"metadata\":{\"result\":1},\"data\":null}", 0, 1,
	  -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "string data", "{\"data\" : \"x\\\"y\",\"metadata\":{\"result\":0}}", 0, 0,
	  -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "nested arrays", "{\"data\":[[[{}],[]]],\"metadata\":{\"result\":1}}", 0,
	  1, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "decoy metadata inside data", "{\"data\":{\"metadata\":{\"result\":1}},"
	  "\"metadata\":{\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "body ends inside data", "{\"data\":{\"acct\":[", 0, -1, -1, NULL, 1, 0,
	  { 0 }, OUTCOME_PLAIN },
	{ "no colon", "{\"data\" x}", 0, -1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	/* A backslash outside a string is no JSON, however the body is cut
	 * (the block path and the byte loop once read it differently). */
	{ "backslash outside a string", "{\"data\":[\\\"],\"metadata\":"
	  "{\"result\":0}}\"                                                  ]}",
	  0, -1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	{ "backslash outside a string, short", "{\"data\":[1,\\\"]\"],"
	  "\"metadata\":{\"result\":0}}", 0, -1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	/* ... but one after the value's end is the envelope's: here yajl
	 * reads the reason, then finds the body broken (a fuzz finding) */
	{ "backslash after the value", "{\"data\":{\"a\":[]},\"metadata\":"
	  "{\"result\":1,\"reason\":\"OK{\"x\":\"\\\\\\0,\"v               "
	  "                    ", 0, 1, -1, "OK{", 1, 0, { 0 }, OUTCOME_PLAIN },
	/* yajl takes form feed and vertical tab as blanks (a fuzz finding) */
	{ "form feed and vertical tab", "{\"data\"\f\v:\v\f[1]\f,\"metadata\":"
	  "{\"result\":1}}", 0, 1, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
	{ "bad value end", "{\"data\":]}", 0, -1, -1, NULL, 1, 0, { 0 }, OUTCOME_PLAIN },
	{ "nested data key kept", "{\"x\":{\"data\":{\"metadata\":{\"result\":1}}},"
	  "\"metadata\":{\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 }, OUTCOME_PLAIN },
};

/* Feeds body in pieces of chunk bytes (0: whole) and checks the verdict. */
static void
run(const struct ocase *t, size_t chunk, int skip)
{
	size_t len = t->len ? t->len : strlen(t->body), off, n;
	struct outcome o;
	int i, ok = 1;

	CHECK(outcome_init(&o) == 0);
	outcome_set_kind(&o, t->kind);
	o.skip_data = skip;
	for (off = 0; off < len; off += n) {
		n = chunk && len - off > chunk ? chunk : len - off;
		outcome_feed(&o, t->body + off, n);
	}
	outcome_finish(&o);
	ok &= o.result == t->result;
	ok &= o.uapi_status == t->uapi;
	ok &= o.failed == t->failed;
	ok &= o.has_reason == (t->reason != NULL);
	ok &= !t->reason || (o.has_reason && strcmp(o.reason, t->reason) == 0);
	ok &= (int)o.nsubs == t->nsubs;
	for (i = 0; i < t->nsubs && i < 3 && (size_t)i < o.nsubs; i++)
		ok &= o.sub_result[i] == t->subs[i];
	CHECK(ok);
	if (!ok)
		printf("  %s (chunk %zu, skip %d): result %d uapi %d failed %d "
		    "reason %s nsubs %zu\n", t->what, chunk, skip, o.result,
		    o.uapi_status, o.failed, o.has_reason ? o.reason : "-",
		    o.nsubs);
	outcome_fini(&o);
}

static void
test_cases(void)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 7, 64 };
	size_t i, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			run(&cases[i], chunks[k], 0);
			/* Skipping data must not change what a plain call
			 * reads (cases that want data, or are not JSON, aside). */
			if (cases[i].kind == OUTCOME_PLAIN && !cases[i].failed)
				run(&cases[i], chunks[k], 1);
		}
	for (i = 0; i < sizeof(shape_cases) / sizeof(shape_cases[0]); i++)
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++)
			run(&shape_cases[i], chunks[k],
			    shape_cases[i].kind == OUTCOME_PLAIN);
	for (i = 0; i < sizeof(skip_cases) / sizeof(skip_cases[0]); i++)
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++)
			run(&skip_cases[i], chunks[k], 1);
}

/* The verdict does not depend on where the body is cut: every real-shaped
 * answer fed in two pieces, cut at every byte, and in three pieces. */
static void
test_every_cut(void)
{
	struct outcome o;
	const struct ocase *t;
	size_t i, len, cut, cut2;
	int ok;

	for (i = 0; i < sizeof(shape_cases) / sizeof(shape_cases[0]); i++) {
		t = &shape_cases[i];
		len = strlen(t->body);
		for (cut = 0; cut <= len; cut++) {
			cut2 = cut + (len - cut) / 2;
			CHECK(outcome_init(&o) == 0);
			outcome_set_kind(&o, t->kind);
			outcome_feed(&o, t->body, cut);
			outcome_feed(&o, t->body + cut, cut2 - cut);
			outcome_feed(&o, t->body + cut2, len - cut2);
			outcome_finish(&o);
			ok = !o.failed && o.result == t->result &&
			    o.uapi_status == t->uapi &&
			    o.has_reason == (t->reason != NULL) &&
			    (!t->reason || strcmp(o.reason, t->reason) == 0);
			CHECK(ok);
			if (!ok)
				printf("  %s cut at %zu/%zu: result %d reason %s\n",
				    t->what, cut, cut2, o.result,
				    o.has_reason ? o.reason : "-");
			outcome_fini(&o);
		}
	}
}

/* An inner reason is capped like metadata's, at a character boundary. */
static void
test_inner_reason_cap(void)
{
	struct outcome o;
	struct buf b;
	size_t i;

	buf_init(&b);
	buf_adds(&b, "{\"cpanelresult\":{\"event\":{\"result\":1},\"error\":\"");
	for (i = 0; i < 1000; i++)
		buf_adds(&b, "\xc3\xa9");
	buf_adds(&b, "\"}}");
	CHECK(outcome_init(&o) == 0);
	outcome_set_kind(&o, OUTCOME_CPANEL);
	outcome_feed(&o, b.p, b.len);
	outcome_finish(&o);
	CHECK(!o.failed && o.result == 0 && o.has_reason);
	CHECK(strlen(o.reason) == OUTCOME_REASON - 2);
	outcome_fini(&o);
	buf_fini(&b);
}

/* An API 2 answer of about mb megabytes (listpopswithdisk-like items),
 * item failed (-1: none) failing. */
static void
big_api2(struct buf *b, size_t mb, long failed)
{
	long i;

	buf_init(b);
	buf_adds(b, "{\"cpanelresult\":{\"apiversion\":2,\"func\":\"listpops\","
	    "\"data\":[");
	for (i = 0; b->len < mb << 20; i++)
		buf_printf(b, "%s{\"email\":\"u%ld@cust1.example\",\"login\":"
		    "\"u%ld@cust1.example\",\"diskquota\":\"unlimited\","
		    "\"result\":%d,\"reason\":\"%s\",\"x\":{\"result\":0}}",
		    i ? "," : "", i, i, i == failed ? 0 : 1,
		    i == failed ? "quota file is broken" : "");
	buf_adds(b, "],\"event\":{\"result\":1},\"module\":\"Email\"}}");
}

static void
test_big_cpanel(void)
{
	static const size_t chunks[] = { 0, 65536, 4093, 1 };
	struct outcome o;
	struct buf b;
	size_t k, off, n;

	for (k = 0; k < 4; k++) {
		big_api2(&b, k == 3 ? 1 : 4, k == 1 ? -1 : 2000 + (long)k);
		CHECK(outcome_init(&o) == 0);
		outcome_set_kind(&o, OUTCOME_CPANEL);
		for (off = 0; off < b.len; off += n) {
			n = chunks[k] && b.len - off > chunks[k] ? chunks[k] :
			    b.len - off;
			outcome_feed(&o, b.p + off, n);
		}
		outcome_finish(&o);
		if (k == 1)
			CHECK(!o.failed && o.result == 1 && !o.has_reason);
		else
			CHECK(!o.failed && o.result == 0 && o.has_reason &&
			    strcmp(o.reason, "quota file is broken") == 0);
		outcome_fini(&o);
		buf_fini(&b);
	}
}

/* Reads a body whose reason is piece n times; o is left to the caller. */
static void
read_reason(struct outcome *o, const char *piece, size_t n)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	buf_adds(&b, "{\"metadata\":{\"result\":0,\"reason\":\"");
	for (i = 0; i < n; i++)
		buf_adds(&b, piece);
	buf_adds(&b, "\"}}");
	CHECK(outcome_init(o) == 0);
	outcome_feed(o, b.p, b.len);
	outcome_finish(o);
	buf_fini(&b);
}

static void
test_reason_cap(void)
{
	struct outcome o;

	read_reason(&o, "r", 2000);
	CHECK(o.has_reason && o.result == 0 && !o.failed);
	CHECK(strlen(o.reason) == OUTCOME_REASON - 1);
	outcome_fini(&o);

	/* Cut at a character, never inside one: "é" is 2 bytes and the cap
	 * (511) is odd, so a byte cut would leave half of one. */
	read_reason(&o, "\xc3\xa9", 1000);
	CHECK(o.has_reason && !o.failed);
	CHECK(strlen(o.reason) == OUTCOME_REASON - 2);
	CHECK((unsigned char)o.reason[OUTCOME_REASON - 3] == 0xa9);
	outcome_fini(&o);
}

/* A listaccts-shaped body of about mb megabytes, metadata at the end. */
static void
big_body(struct buf *b, size_t mb, size_t blob)
{
	size_t i;

	buf_init(b);
	buf_adds(b, "{\"data\":{");
	if (blob) {
		buf_adds(b, "\"blob\":\"");
		for (i = 0; i < blob; i++)
			buf_addc(b, (char)('a' + i % 26));
		buf_adds(b, "\",");
	}
	buf_adds(b, "\"acct\":[");
	for (i = 0; b->len < mb << 20; i++)
		buf_printf(b, "%s{\"user\":\"cust%zu\",\"domain\":\"cust%zu.example"
		    ".com\",\"suspended\":0,\"metadata\":{\"result\":1}}", i ? "," :
		    "", i, i);
	buf_adds(b, "]},\"metadata\":{\"result\":0,\"reason\":\"big\"}}");
}

static void
test_big(void)
{
	static const size_t chunks[] = { 0, 65536, 4093 };
	struct outcome o;
	struct buf b;
	size_t k, off, n;

	for (k = 0; k < 3; k++) {
		big_body(&b, k == 2 ? 6 : 8, k == 2 ? 3 << 20 : 0);
		CHECK(outcome_init(&o) == 0);
		for (off = 0; off < b.len; off += n) {
			n = chunks[k] && b.len - off > chunks[k] ? chunks[k] :
			    b.len - off;
			outcome_feed(&o, b.p + off, n);
		}
		outcome_finish(&o);
		CHECK(!o.failed && o.result == 0 && o.has_reason &&
		    strcmp(o.reason, "big") == 0);
		if (o.failed || o.result != 0)
			printf("  big body %zu: failed %d result %d\n", k,
			    o.failed, o.result);
		outcome_fini(&o);
		buf_fini(&b);
	}
	/* One byte at a time through a 1 MB body. */
	big_body(&b, 1, 0);
	CHECK(outcome_init(&o) == 0);
	for (off = 0; off < b.len; off++)
		outcome_feed(&o, b.p + off, 1);
	outcome_finish(&o);
	CHECK(!o.failed && o.result == 0 && o.has_reason &&
	    strcmp(o.reason, "big") == 0);
	outcome_fini(&o);
	buf_fini(&b);
}

/* A small deterministic generator of valid JSON values, rich in what the
 * skipper must get right across its 64-byte blocks: runs of backslashes,
 * escaped quotes, brackets inside strings, deep and shallow nesting. */
static unsigned long rng_state;

static unsigned
rng(unsigned n)
{
	rng_state = rng_state * 6364136223846793005UL + 1442695040888963407UL;
	return (unsigned)(rng_state >> 33) % n;
}

static void
gen_string(struct buf *b)
{
	static const char *const pieces[] = { "a", "xyz", "\\\"", "\\\\",
		"\\\\\\\"", "]", "}", "[{", ",", ":", "\\u0022", "\\n",
		"\\/", " ", "metadata", "\\\\\\\\" };
	unsigned i, n = rng(12);

	buf_addc(b, '"');
	for (i = 0; i < n; i++)
		buf_adds(b, pieces[rng(sizeof(pieces) / sizeof(pieces[0]))]);
	buf_addc(b, '"');
}

static void
gen_value(struct buf *b, int depth)
{
	static const char *const scalars[] = { "0", "-1.5e3", "true", "false",
		"null", "123456" };
	static const char *const blanks[] = { "", " ", "\n", "\t", "\f" };
	unsigned i, n, kind = depth > 6 ? rng(2) : rng(5);

	buf_adds(b, blanks[rng(5)]);
	if (kind == 0) {
		buf_adds(b, scalars[rng(6)]);
	} else if (kind == 1) {
		gen_string(b);
	} else {
		n = rng(6);
		buf_addc(b, kind == 2 ? '[' : '{');
		for (i = 0; i < n; i++) {
			if (i)
				buf_addc(b, ',');
			if (kind != 2) {
				gen_string(b);
				buf_adds(b, blanks[rng(5)]);
				buf_addc(b, ':');
			}
			gen_value(b, depth + 1);
		}
		buf_addc(b, kind == 2 ? ']' : '}');
	}
	buf_adds(b, blanks[rng(5)]);
}

static void
feed_all(struct outcome *o, const struct buf *b, size_t chunk)
{
	size_t off, n;

	for (off = 0; off < b->len; off += n) {
		n = chunk && b->len - off > chunk ? chunk : b->len - off;
		outcome_feed(o, b->p + off, n);
	}
	outcome_finish(o);
}

/* Stepping over data reads the same verdict as parsing it, for a
 * thousand generated bodies cut in pieces of every awkward size. */
static void
test_skip_generated(void)
{
	static const size_t chunks[] = { 0, 1, 63, 64, 65, 127, 4096 };
	struct outcome whole, o;
	struct buf b;
	size_t k;
	int i, r, ok;

	rng_state = 42;
	for (i = 0; i < 1000; i++) {
		buf_init(&b);
		r = (int)rng(2);
		buf_adds(&b, "{\"data\":");
		gen_value(&b, 0);
		buf_printf(&b, ",\"metadata\":{\"result\":%d,\"reason\":\"r%d\"}}",
		    r, i);
		CHECK(outcome_init(&whole) == 0);
		feed_all(&whole, &b, 0);
		CHECK(!whole.failed && whole.result == r);
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
			CHECK(outcome_init(&o) == 0);
			o.skip_data = 1;
			feed_all(&o, &b, chunks[k]);
			ok = !o.failed && o.result == whole.result &&
			    o.has_reason && whole.has_reason &&
			    strcmp(o.reason, whole.reason) == 0;
			CHECK(ok);
			if (!ok)
				printf("  generated body %d (chunk %zu): %.*s\n", i,
				    chunks[k], (int)b.len, b.p);
			outcome_fini(&o);
		}
		outcome_fini(&whole);
		buf_fini(&b);
	}
}

int
main(void)
{
	test_cases();
	test_every_cut();
	test_inner_reason_cap();
	test_big_cpanel();
	test_reason_cap();
	test_big();
	test_skip_generated();
	return unit_report();
}
