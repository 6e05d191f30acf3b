/* test_http.c - the llhttp wrapper: events, pipelining, the framing
 * refusals of SPEC section 4 and the size limits. */
#include <stdlib.h>

#include "http.h"
#include "unit.h"

#define HOST "Host: whm\r\n"
#define POST "POST /json-api/x HTTP/1.1\r\n" HOST

struct run {
	enum http_event ev;   /* the last event: HEV_DONE or HEV_ERROR */
	int status;
	int heads;            /* HEV_HEAD events seen */
	int keep_alive;
	size_t used;          /* bytes consumed in all */
	char body[256];
	char target[64];
};

/* Feeds len bytes in pieces of chunk bytes (0: all at once), as conn.c
 * does: HEV_HEAD, then the rest; a zero-length feed at the end delivers a
 * completion that is still pending. Stops at HEV_DONE or HEV_ERROR. */
static void
drive(const char *data, size_t len, size_t chunk, size_t max_head,
    size_t max_body, struct run *out)
{
	struct http_parser hp;
	struct http_req req;
	struct arena a;
	size_t off = 0, avail = 0, used;
	enum http_event ev = HEV_MORE;
	int overrun = 0;

	memset(out, 0, sizeof(*out));
	arena_init(&a);
	req.arena = &a;
	http_parser_init(&hp, max_head, max_body);
	http_begin(&hp, &req);
	for (;;) {
		if (off == avail) {
			if (avail == len) {
				/* Out of bytes: one empty feed. */
				ev = http_feed(&hp, "", 0, &used);
				if (ev == HEV_HEAD) {
					out->heads++;
					ev = http_feed(&hp, "", 0, &used);
				}
				break;
			}
			avail = chunk && len - avail > chunk ? avail + chunk :
			    len;
		}
		ev = http_feed(&hp, data + off, avail - off, &used);
		overrun |= used > avail - off;
		off += used;
		if (ev == HEV_HEAD)
			out->heads++;
		else if (ev == HEV_DONE || ev == HEV_ERROR)
			break;
	}
	CHECK(!overrun);
	out->ev = ev;
	out->status = hp.status;
	out->used = off;
	out->keep_alive = req.keep_alive;
	if (req.body.p)
		snprintf(out->body, sizeof(out->body), "%s", req.body.p);
	if (req.target)
		snprintf(out->target, sizeof(out->target), "%s", req.target);
	buf_fini(&req.body);
	http_parser_fini(&hp);
	arena_fini(&a);
}

/* Runs a request whole and byte by byte; both must give status (0: the
 * message completes). */
static void
expect(const char *what, const char *data, size_t len, int status)
{
	static const size_t chunks[] = { 0, 1, 7 };
	struct run r;
	size_t i;

	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		drive(data, len, chunks[i], 4096, 1000, &r);
		if (status == 0) {
			CHECK(r.ev == HEV_DONE && r.status == 0);
			CHECK(r.heads == 1);
			CHECK(r.used == len);
		} else {
			CHECK(r.ev == HEV_ERROR && r.status == status);
		}
		if ((status == 0) != (r.ev == HEV_DONE) || r.status != status)
			printf("  %s (chunk %zu): event %d status %d, want %d\n",
			    what, chunks[i], r.ev, r.status, status);
	}
}

#define EXPECT(what, lit, status) expect(what, lit, sizeof(lit) - 1, status)

static void
test_refusals(void)
{
	EXPECT("plain GET", "GET /json-api/x?a=1 HTTP/1.1\r\n" HOST "\r\n", 0);
	EXPECT("GET 1.0", "GET /json-api/x HTTP/1.0\r\n" HOST "\r\n", 0);
	EXPECT("GET CL 0", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "Content-Length: 0\r\n\r\n", 0);
	EXPECT("tab in value", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\tb\r\n\r\n", 0);
	EXPECT("POST CL", POST "Content-Length: 3\r\n\r\na=1", 0);
	EXPECT("POST chunked", POST "Transfer-Encoding: chunked\r\n\r\n"
	    "3\r\na=1\r\n0\r\n\r\n", 0);

	EXPECT("CL+TE", POST "Content-Length: 5\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n0\r\n\r\n", 400);
	EXPECT("TE+CL", POST "Transfer-Encoding: chunked\r\nContent-Length: "
	    "5\r\n\r\n0\r\n\r\n", 400);
	EXPECT("two CL", POST "Content-Length: 3\r\nContent-Length: 3\r\n\r\n"
	    "a=1", 400);
	EXPECT("CL list", POST "Content-Length: 3, 3\r\n\r\na=1", 400);
	EXPECT("CL +5", POST "Content-Length: +3\r\n\r\na=1", 400);
	EXPECT("CL -1", POST "Content-Length: -1\r\n\r\n", 400);
	EXPECT("CL hex", POST "Content-Length: 0x3\r\n\r\na=1", 400);
	EXPECT("CL empty", POST "Content-Length: \r\n\r\n", 400);
	EXPECT("TE gzip", POST "Transfer-Encoding: gzip\r\n\r\n", 400);
	EXPECT("TE chunked, gzip", POST "Transfer-Encoding: chunked, gzip\r\n"
	    "\r\n0\r\n\r\n", 400);
	EXPECT("TE gzip, chunked", POST "Transfer-Encoding: gzip, chunked\r\n"
	    "\r\n0\r\n\r\n", 400);
	EXPECT("TE twice", POST "Transfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
	EXPECT("TE identity", POST "Transfer-Encoding: identity\r\n\r\n", 400);
	EXPECT("chunked in HTTP/1.0", "POST /json-api/x HTTP/1.0\r\n" HOST
	    "Transfer-Encoding: chunked\r\n\r\n3\r\na=1\r\n0\r\n\r\n", 400);
	EXPECT("obs-fold", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\r\n b\r\n\r\n", 400);
	EXPECT("obs-fold tab", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\r\n\tb\r\n\r\n", 400);
	EXPECT("obs-fold empty first line", "GET /json-api/x HTTP/1.1\r\n"
	    HOST "X-A:\r\n b\r\n\r\n", 400);
	EXPECT("obs-fold after a space", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: \r\n b\r\n\r\n", 400);
	EXPECT("obs-fold Host", "GET /json-api/x HTTP/1.1\r\n"
	    "Host:\r\n whm\r\n\r\n", 400);
	EXPECT("bare LF everywhere", "GET /json-api/x HTTP/1.1\n"
	    "Host: whm\n\n", 400);
	EXPECT("bare LF in head", "GET /json-api/x HTTP/1.1\r\nHost: whm\n"
	    "X-A: b\r\n\r\n", 400);
	EXPECT("bare LF after request line", "GET /json-api/x HTTP/1.1\n"
	    HOST "\r\n", 400);
	EXPECT("bare CR", "GET /json-api/x HTTP/1.1\r\nHost: whm\rX-A: b\r\n"
	    "\r\n", 400);
	EXPECT("bare CR in value", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\rb\r\n\r\n", 400);
	EXPECT("bare CR smuggling", POST "X-A: \rTransfer-Encoding: chunked"
	    "\r\n\r\n0\r\n\r\n", 400);
	EXPECT("NUL in value", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\0b\r\n\r\n", 400);
	EXPECT("SOH in value", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\x01" "b\r\n\r\n", 400);
	EXPECT("ESC in value", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\x1b" "b\r\n\r\n", 400);
	EXPECT("DEL in value", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A: a\x7f" "b\r\n\r\n", 400);
	EXPECT("space in name", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "Bad Name: x\r\n\r\n", 400);
	EXPECT("@ in name", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X@Y: x\r\n\r\n", 400);
	EXPECT("space before colon", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X-A : x\r\n\r\n", 400);
	EXPECT("empty name", "GET /json-api/x HTTP/1.1\r\n" HOST
	    ": x\r\n\r\n", 400);
	EXPECT("NUL in name", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "X\0A: x\r\n\r\n", 400);
	EXPECT("no Host 1.1", "GET /json-api/x HTTP/1.1\r\n\r\n", 400);
	EXPECT("no Host 1.0", "GET /json-api/x HTTP/1.0\r\n\r\n", 400);
	EXPECT("two Hosts", "GET /json-api/x HTTP/1.1\r\n" HOST HOST "\r\n",
	    400);
	EXPECT("two Hosts, other case", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "hOST: other\r\n\r\n", 400);
	EXPECT("two Authorization", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "Authorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n", 400);
	EXPECT("Upgrade", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "Upgrade: websocket\r\n\r\n", 400);
	EXPECT("Upgrade + Connection", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 400);
	EXPECT("HTTP/0.9", "GET /json-api/x HTTP/0.9\r\n" HOST "\r\n", 400);
	EXPECT("HTTP/2.0", "GET /json-api/x HTTP/2.0\r\n" HOST "\r\n", 400);
	EXPECT("HTTP/1.2", "GET /json-api/x HTTP/1.2\r\n" HOST "\r\n", 400);
	EXPECT("HTTP/1.9", "GET /json-api/x HTTP/1.9\r\n" HOST "\r\n", 400);
	EXPECT("HTTP/3.0", "GET /json-api/x HTTP/3.0\r\n" HOST "\r\n", 400);
	EXPECT("simple request", "GET /json-api/x\r\n\r\n", 400);
	EXPECT("lower-case version", "GET /json-api/x http/1.1\r\n" HOST
	    "\r\n", 400);
	EXPECT("GET with body", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "Content-Length: 3\r\n\r\na=1", 400);
	EXPECT("GET chunked", "GET /json-api/x HTTP/1.1\r\n" HOST
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
	EXPECT("trailer", POST "Transfer-Encoding: chunked\r\n\r\n"
	    "3\r\na=1\r\n0\r\nX-T: 1\r\n\r\n", 400);
	EXPECT("trailer Host", POST "Transfer-Encoding: chunked\r\n\r\n"
	    "0\r\nHost: evil\r\n\r\n", 400);
	EXPECT("chunk without CRLF", POST "Transfer-Encoding: chunked\r\n\r\n"
	    "3\r\na=1XX0\r\n\r\n", 400);
	EXPECT("bad chunk size", POST "Transfer-Encoding: chunked\r\n\r\n"
	    "g\r\nabc\r\n0\r\n\r\n", 400);
}

/* A chunked POST whose first chunk-size line is "<prefix>3<ext>\r\n". */
static void
chunk_line(const char *what, size_t zeros, size_t ext, int status)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	buf_adds(&b, POST "Transfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < zeros; i++)
		buf_addc(&b, '0');
	buf_addc(&b, '3');
	if (ext) {
		buf_adds(&b, ";x=");
		for (i = 0; i < ext; i++)
			buf_addc(&b, 'a');
	}
	buf_adds(&b, "\r\na=1\r\n0\r\n\r\n");
	expect(what, b.p, b.len, status);
	buf_fini(&b);
}

static void
test_chunk_lines(void)
{
	chunk_line("short extension", 0, 10, 0);
	chunk_line("1000-byte extension", 0, 1000, 0);
	chunk_line("1100-byte extension", 0, 1100, 400);
	chunk_line("5000-byte extension", 0, 5000, 400);
	/* The limit is on the line, extensions included: leading zeros
	 * count as well. */
	chunk_line("1100 leading zeros", 1100, 0, 400);
	chunk_line("600 zeros + 600-byte extension", 600, 600, 400);
}

static void
test_limits(void)
{
	struct buf b;
	struct run r;
	size_t i;

	/* Header bytes: a long value, a long target, many small fields. */
	buf_init(&b);
	buf_adds(&b, "GET /json-api/x HTTP/1.1\r\n" HOST "X-Big: ");
	for (i = 0; i < 2000; i++)
		buf_addc(&b, 'v');
	buf_adds(&b, "\r\n\r\n");
	drive(b.p, b.len, 0, 1024, 100, &r);
	CHECK(r.ev == HEV_ERROR && r.status == 431);
	drive(b.p, b.len, 1, 1024, 100, &r);
	CHECK(r.ev == HEV_ERROR && r.status == 431);
	drive(b.p, b.len, 0, 4096, 100, &r);
	CHECK(r.ev == HEV_DONE);

	b.len = 0;
	buf_adds(&b, "GET /json-api/x?a=");
	for (i = 0; i < 2000; i++)
		buf_addc(&b, 'q');
	buf_adds(&b, " HTTP/1.1\r\n" HOST "\r\n");
	drive(b.p, b.len, 0, 1024, 100, &r);
	CHECK(r.ev == HEV_ERROR && r.status == 431);

	b.len = 0;
	buf_adds(&b, "GET /json-api/x HTTP/1.1\r\n" HOST);
	for (i = 0; i < 200; i++)
		buf_printf(&b, "X-%zu: 1\r\n", i);
	buf_adds(&b, "\r\n");
	drive(b.p, b.len, 0, 1 << 20, 100, &r);
	CHECK(r.ev == HEV_ERROR && r.status == 431);
	b.len = 0;
	buf_adds(&b, "GET /json-api/x HTTP/1.1\r\n" HOST);
	for (i = 0; i < 100; i++)
		buf_printf(&b, "X-%zu: 1\r\n", i);
	buf_adds(&b, "\r\n");
	drive(b.p, b.len, 0, 1 << 20, 100, &r);
	CHECK(r.ev == HEV_DONE);

	/* Body: Content-Length over the limit is refused at the head, before
	 * a body byte is read; a chunked body when it grows past it. */
	b.len = 0;
	buf_adds(&b, POST "Content-Length: 101\r\n\r\n");
	drive(b.p, b.len, 0, 4096, 100, &r);
	CHECK(r.ev == HEV_ERROR && r.status == 413 && r.heads == 0);
	b.len = 0;
	buf_adds(&b, POST "Content-Length: 99999999999999999999\r\n\r\n");
	drive(b.p, b.len, 0, 4096, 100, &r);
	CHECK(r.ev == HEV_ERROR && (r.status == 413 || r.status == 400));
	b.len = 0;
	buf_adds(&b, POST "Content-Length: 100\r\n\r\n");
	for (i = 0; i < 100; i++)
		buf_addc(&b, 'z');
	drive(b.p, b.len, 0, 4096, 100, &r);
	CHECK(r.ev == HEV_DONE && strlen(r.body) == 100);
	b.len = 0;
	buf_adds(&b, POST "Transfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 11; i++)
		buf_adds(&b, "a\r\n0123456789\r\n");
	buf_adds(&b, "0\r\n\r\n");
	drive(b.p, b.len, 0, 4096, 100, &r);
	CHECK(r.ev == HEV_ERROR && r.status == 413);
	drive(b.p, b.len, 1, 4096, 100, &r);
	CHECK(r.ev == HEV_ERROR && r.status == 413);
	drive(b.p, b.len, 0, 4096, 110, &r);
	CHECK(r.ev == HEV_DONE && strlen(r.body) == 110);
	buf_fini(&b);
}

static void
test_events(void)
{
	static const char get2[] = "GET /json-api/a HTTP/1.1\r\n" HOST "\r\n"
	    "POST /json-api/b HTTP/1.1\r\n" HOST "Content-Length: 3\r\n\r\nb=2"
	    "GET /json-api/c HTTP/1.1\r\n" HOST "\r\n";
	static const char *const targets[] = { "/json-api/a", "/json-api/b",
	    "/json-api/c" };
	static const char post[] = POST "Content-Type: application/"
	    "x-www-form-urlencoded\r\nAuthorization: Bearer k\r\n"
	    "Content-Length: 7\r\n\r\na=1&b=2";
	struct http_parser hp;
	struct http_req req;
	struct arena a;
	size_t used, off, head_len = strstr(post, "\r\n\r\n") + 4 - post;
	enum http_event ev;
	struct run r;
	int i;

	arena_init(&a);
	req.arena = &a;
	http_parser_init(&hp, 4096, 1000);
	http_begin(&hp, &req);
	ev = http_feed(&hp, post, sizeof(post) - 1, &used);
	CHECK(ev == HEV_HEAD);
	CHECK(used == head_len);          /* no body byte read yet */
	CHECK(req.body.len == 0);
	CHECK_STR(req.method, "POST");
	CHECK_STR(req.target, "/json-api/x");
	CHECK(req.major == 1 && req.minor == 1);
	CHECK_STR(req.host, "whm");
	CHECK_STR(req.authorization, "Bearer k");
	CHECK_STR(req.content_type, "application/x-www-form-urlencoded");
	CHECK_STR(http_header(&req, "CONTENT-length"), "7");
	CHECK(http_header(&req, "X-None") == NULL);
	CHECK(req.has_body == 1);
	ev = http_feed(&hp, post + used, sizeof(post) - 1 - used, &used);
	CHECK(ev == HEV_DONE);
	CHECK(used == 7);
	CHECK(req.body.len == 7 && memcmp(req.body.p, "a=1&b=2", 7) == 0);
	CHECK(req.keep_alive == 1);
	CHECK(http_eof(&hp) == HEV_MORE);   /* at a message boundary */
	buf_fini(&req.body);

	/* Pipelining: three messages in one buffer. */
	http_begin(&hp, &req);
	off = 0;
	for (i = 0; i < 3; i++) {
		ev = http_feed(&hp, get2 + off, sizeof(get2) - 1 - off, &used);
		CHECK(ev == HEV_HEAD);
		off += used;
		CHECK_STR(req.target, targets[i]);
		ev = http_feed(&hp, get2 + off, sizeof(get2) - 1 - off, &used);
		CHECK(ev == HEV_DONE);
		off += used;
		if (i == 1)
			CHECK(req.body.len == 3 && memcmp(req.body.p, "b=2", 3)
			    == 0);
		buf_fini(&req.body);
		http_begin(&hp, &req);
	}
	CHECK(off == sizeof(get2) - 1);
	CHECK(http_eof(&hp) == HEV_MORE);
	buf_fini(&req.body);
	http_parser_fini(&hp);

	/* EOF in the middle: request line, headers, body. */
	{
		static const char *const cut[] = { "GET /json-api/x HT",
		    "GET /json-api/x HTTP/1.1\r\nHo", POST "Content-Length: 9"
		    "\r\n\r\na=1", POST "Transfer-Encoding: chunked\r\n\r\n3\r\n",
		    "GE" };
		size_t k;
		for (k = 0; k < sizeof(cut) / sizeof(cut[0]); k++) {
			http_parser_init(&hp, 4096, 1000);
			http_begin(&hp, &req);
			off = 0;
			do {
				ev = http_feed(&hp, cut[k] + off, strlen(cut[k]) -
				    off, &used);
				off += used;
			} while (ev == HEV_HEAD);
			CHECK(ev == HEV_MORE);
			ev = http_eof(&hp);
			CHECK(ev == HEV_ERROR && hp.status == 400);
			if (ev != HEV_ERROR)
				printf("  eof after \"%s\" not an error\n", cut[k]);
			buf_fini(&req.body);
			http_parser_fini(&hp);
		}
	}
	http_parser_init(&hp, 4096, 1000);
	http_begin(&hp, &req);
	CHECK(http_eof(&hp) == HEV_MORE);     /* nothing sent at all */
	http_parser_fini(&hp);
	arena_fini(&a);

	/* Chunked bodies are assembled, whatever the chunking. */
	{
		static const char ch[] = POST "Transfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\nworld&x=1\n\r\n"
		    "0\r\n\r\n";
		static const size_t sizes[] = { 0, 1, 2, 3, 5, 13 };
		size_t k;
		for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			drive(ch, sizeof(ch) - 1, sizes[k], 4096, 1000, &r);
			CHECK(r.ev == HEV_DONE);
			CHECK_STR(r.body, "hello world&x=1\n");
			CHECK(r.used == sizeof(ch) - 1);
		}
	}
}

static void
test_keep_alive(void)
{
	static const struct { const char *req; int ka; } t[] = {
		{ "GET /json-api/x HTTP/1.1\r\n" HOST "\r\n", 1 },
		{ "GET /json-api/x HTTP/1.1\r\n" HOST "Connection: close\r\n\r\n",
		  0 },
		{ "GET /json-api/x HTTP/1.1\r\n" HOST "Connection: Close\r\n\r\n",
		  0 },
		{ "GET /json-api/x HTTP/1.1\r\n" HOST "Connection: keep-alive\r\n"
		  "\r\n", 1 },
		{ "GET /json-api/x HTTP/1.0\r\n" HOST "\r\n", 0 },
		{ "GET /json-api/x HTTP/1.0\r\n" HOST "Connection: keep-alive\r\n"
		  "\r\n", 1 },
		{ "GET /json-api/x HTTP/1.0\r\n" HOST "Connection: Keep-Alive\r\n"
		  "\r\n", 1 },
		{ "GET /json-api/x HTTP/1.0\r\n" HOST "Connection: close\r\n\r\n",
		  0 },
	};
	struct run r;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		drive(t[i].req, strlen(t[i].req), 0, 4096, 100, &r);
		CHECK(r.ev == HEV_DONE);
		CHECK(r.keep_alive == t[i].ka);
		if (r.keep_alive != t[i].ka)
			printf("  keep_alive %d for %s", r.keep_alive, t[i].req);
	}
}

int
main(void)
{
	test_refusals();
	test_chunk_lines();
	test_limits();
	test_events();
	test_keep_alive();
	return unit_report();
}
