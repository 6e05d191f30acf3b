/* test_outcome.c - WHM's verdict read from a response body while it is
 * relayed: metadata.result/reason, data.uapi.status, batch sub-results. */
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
};

static const struct ocase cases[] = {
	{ "metadata first", "{\"metadata\":{\"result\":1,\"reason\":\"OK\","
	  "\"version\":1,\"command\":\"listaccts\"},\"data\":{\"acct\":[]}}",
	  0, 1, -1, "OK", 0, 0, { 0 } },
	{ "metadata last", "{\"data\":{\"acct\":[{\"user\":\"a\"}]},\"metadata\":"
	  "{\"version\":1,\"reason\":\"Access denied\",\"result\":0}}",
	  0, 0, -1, "Access denied", 0, 0, { 0 } },
	{ "whitespace", " \n{ \"metadata\" : { \"result\" : 0 , \"reason\" :"
	  " \"no\" } }\n", 0, 0, -1, "no", 0, 0, { 0 } },
	{ "escaped reason", "{\"metadata\":{\"result\":0,\"reason\":"
	  "\"a \\\"b\\\" \\u00e9\"}}", 0, 0, -1, "a \"b\" \xc3\xa9", 0, 0, { 0 } },
	{ "decoy before", "{\"data\":{\"metadata\":{\"result\":1,\"reason\":"
	  "\"decoy\"}},\"metadata\":{\"result\":0,\"reason\":\"real\"}}",
	  0, 0, -1, "real", 0, 0, { 0 } },
	{ "decoy after", "{\"metadata\":{\"result\":0,\"reason\":\"real\"},"
	  "\"data\":{\"acct\":[{\"metadata\":{\"result\":1,\"reason\":"
	  "\"decoy\"}}]}}", 0, 0, -1, "real", 0, 0, { 0 } },
	{ "decoy inside metadata", "{\"metadata\":{\"x\":{\"result\":1,"
	  "\"reason\":\"decoy\"},\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 } },
	{ "object under result", "{\"metadata\":{\"result\":{\"v\":0},"
	  "\"reason\":[\"decoy\"]}}", 0, -1, -1, NULL, 0, 0, { 0 } },
	{ "decoy in an array", "{\"data\":[{\"metadata\":{\"result\":0}}],"
	  "\"metadata\":{\"result\":1}}", 0, 1, -1, NULL, 0, 0, { 0 } },
	{ "root array", "[{\"metadata\":{\"result\":1,\"reason\":\"x\"}}]",
	  0, -1, -1, NULL, 0, 0, { 0 } },
	{ "long key", "{\"metadata_and_more_text\":{\"result\":1},"
	  "\"metadata\":{\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 } },
	{ "key with NUL", "{\"metadata\":{\"result\":0,\"reason\":\"real\"},"
	  "\"metadata\\u0000\":{\"result\":1,\"reason\":\"decoy\"}}",
	  0, 0, -1, "real", 0, 0, { 0 } },
	{ "result in a string", "{\"metadata\":{\"result\":\"0\"}}",
	  0, 0, -1, NULL, 0, 0, { 0 } },
	{ "uapi", "{\"metadata\":{\"result\":1,\"reason\":\"OK\"},\"data\":"
	  "{\"uapi\":{\"errors\":[\"no such user\"],\"status\":0}}}",
	  0, 1, 0, "OK", 0, 0, { 0 } },
	{ "uapi ok", "{\"data\":{\"uapi\":{\"status\":1,\"data\":{\"status\":0}}},"
	  "\"metadata\":{\"result\":1}}", 0, 1, 1, NULL, 0, 0, { 0 } },
	{ "uapi decoy", "{\"data\":{\"x\":{\"uapi\":{\"status\":1}},\"uapi\":"
	  "{\"status\":0}}}", 0, -1, 0, NULL, 0, 0, { 0 } },
	{ "batch", "{\"data\":{\"result\":[{\"metadata\":{\"result\":1}},"
	  "{\"data\":{\"metadata\":{\"result\":1}},\"metadata\":{\"result\":0,"
	  "\"reason\":\"x\"}},{\"data\":[1,2,{}],\"metadata\":{\"result\":1}}]},"
	  "\"metadata\":{\"result\":1,\"reason\":\"OK\"}}",
	  0, 1, -1, "OK", 0, 3, { 1, 0, 1 } },
	{ "batch sub without metadata", "{\"data\":{\"result\":[{\"x\":1},"
	  "{\"metadata\":{\"result\":0}}]},\"metadata\":{\"result\":0}}",
	  0, 0, -1, NULL, 0, 2, { -1, 0 } },
	{ "HTML", "<html><body>502 Bad Gateway</body></html>",
	  0, -1, -1, NULL, 1, 0, { 0 } },
	{ "truncated", "{\"metadata\":{\"result\":1,\"reason\":\"OK\"},\"data\":{",
	  0, 1, -1, "OK", 1, 0, { 0 } },
	{ "trailing garbage", "{\"metadata\":{\"result\":1}}x",
	  0, 1, -1, NULL, 1, 0, { 0 } },
	{ "two documents", "{\"metadata\":{\"result\":1}}{\"metadata\":"
	  "{\"result\":0}}", 0, 1, -1, NULL, 1, 0, { 0 } },
	{ "empty body", "", 0, -1, -1, NULL, 1, 0, { 0 } },
	{ "NUL byte", "{\"metadata\":{\"result\":1}\0}", 26, 1, -1, NULL, 1,
	  0, { 0 } },
};

/* Bodies for the skip of data: what the skipper must step over exactly. */
static const struct ocase skip_cases[] = {
	{ "brackets and quotes in strings", "{\"data\":{\"a\":\"}]{[\\\"\\\\\","
	  "\"b\":[1,{\"c\":\"]\"}]},\"metadata\":{\"result\":0,\"reason\":\"r\"}}",
	  0, 0, -1, "r", 0, 0, { 0 } },
	{ "scalar data", "{\"data\":12 ,\"metadata\":{\"result\":1}}", 0, 1, -1,
	  NULL, 0, 0, { 0 } },
	{ "null data last", "{\"metadata\":{\"result\":1},\"data\":null}", 0, 1,
	  -1, NULL, 0, 0, { 0 } },
	{ "string data", "{\"data\" : \"x\\\"y\",\"metadata\":{\"result\":0}}", 0, 0,
	  -1, NULL, 0, 0, { 0 } },
	{ "nested arrays", "{\"data\":[[[{}],[]]],\"metadata\":{\"result\":1}}", 0,
	  1, -1, NULL, 0, 0, { 0 } },
	{ "decoy metadata inside data", "{\"data\":{\"metadata\":{\"result\":1}},"
	  "\"metadata\":{\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 } },
	{ "body ends inside data", "{\"data\":{\"acct\":[", 0, -1, -1, NULL, 1, 0,
	  { 0 } },
	{ "no colon", "{\"data\" x}", 0, -1, -1, NULL, 1, 0, { 0 } },
	/* A backslash outside a string is no JSON, however the body is cut
	 * (the block path and the byte loop once read it differently). */
	{ "backslash outside a string", "{\"data\":[\\\"],\"metadata\":"
	  "{\"result\":0}}\"                                                  ]}",
	  0, -1, -1, NULL, 1, 0, { 0 } },
	{ "backslash outside a string, short", "{\"data\":[1,\\\"]\"],"
	  "\"metadata\":{\"result\":0}}", 0, -1, -1, NULL, 1, 0, { 0 } },
	/* ... but one after the value's end is the envelope's: here yajl
	 * reads the reason, then finds the body broken (a fuzz finding) */
	{ "backslash after the value", "{\"data\":{\"a\":[]},\"metadata\":"
	  "{\"result\":1,\"reason\":\"OK{\"x\":\"\\\\\\0,\"v               "
	  "                    ", 0, 1, -1, "OK{", 1, 0, { 0 } },
	/* yajl takes form feed and vertical tab as blanks (a fuzz finding) */
	{ "form feed and vertical tab", "{\"data\"\f\v:\v\f[1]\f,\"metadata\":"
	  "{\"result\":1}}", 0, 1, -1, NULL, 0, 0, { 0 } },
	{ "bad value end", "{\"data\":]}", 0, -1, -1, NULL, 1, 0, { 0 } },
	{ "nested data key kept", "{\"x\":{\"data\":{\"metadata\":{\"result\":1}}},"
	  "\"metadata\":{\"result\":0}}", 0, 0, -1, NULL, 0, 0, { 0 } },
};

/* Feeds body in pieces of chunk bytes (0: whole) and checks the verdict. */
static void
run(const struct ocase *t, size_t chunk, int skip)
{
	size_t len = t->len ? t->len : strlen(t->body), off, n;
	struct outcome o;
	int i, ok = 1;

	CHECK(outcome_init(&o) == 0);
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
			if (cases[i].uapi == -1 && cases[i].nsubs == 0 &&
			    !cases[i].failed)
				run(&cases[i], chunks[k], 1);
		}
	for (i = 0; i < sizeof(skip_cases) / sizeof(skip_cases[0]); i++)
		for (k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++)
			run(&skip_cases[i], chunks[k], 1);
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
	test_reason_cap();
	test_big();
	test_skip_generated();
	return unit_report();
}
