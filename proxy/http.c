/* http.c - see http.h.
 *
 * llhttp is built in strict mode and no lenient flag is ever set. What strict
 * llhttp still lets through and the rules of SPEC section 4 are checked here:
 * HTTP/0.9 and 2.0 request lines, Host counts, Upgrade, obs-fold, GET with a
 * body, chunk extensions, trailers, and the header and body size limits. */
#include "http.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HTTP_MAX_HEADERS 128
#define HTTP_MAX_CHUNK_LINE 1024

static int on_message_begin(llhttp_t *);
static int on_url(llhttp_t *, const char *, size_t);
static int on_header_field(llhttp_t *, const char *, size_t);
static int on_header_value(llhttp_t *, const char *, size_t);
static int on_header_value_complete(llhttp_t *);
static int on_headers_complete(llhttp_t *);
static int on_body(llhttp_t *, const char *, size_t);
static int on_message_complete(llhttp_t *);
static int on_chunk_ext(llhttp_t *, const char *, size_t);
static int on_chunk_header(llhttp_t *);

/* Shared by every worker: filled in once, before the first parser. */
static llhttp_settings_t settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static struct http_parser *
hp_of(llhttp_t *p)
{
	return p->data;
}

/* Records a refusal and stops llhttp. */
static int
fail(struct http_parser *hp, int status, const char *reason)
{
	if (hp->status == 0) {
		hp->status = status;
		hp->reason = reason;
	}
	llhttp_set_error_reason(&hp->p, reason);
	return HPE_USER;
}

static void
settings_init(void)
{
	llhttp_settings_init(&settings);
	settings.on_message_begin = on_message_begin;
	settings.on_url = on_url;
	settings.on_header_field = on_header_field;
	settings.on_header_value = on_header_value;
	settings.on_header_value_complete = on_header_value_complete;
	settings.on_headers_complete = on_headers_complete;
	settings.on_body = on_body;
	settings.on_message_complete = on_message_complete;
	settings.on_chunk_extension_name = on_chunk_ext;
	settings.on_chunk_extension_value = on_chunk_ext;
	settings.on_chunk_header = on_chunk_header;
}

void
http_parser_init(struct http_parser *hp, size_t max_header_bytes,
    size_t max_body_bytes)
{
	/* Workers accept their first connections at the same time. */
	pthread_once(&settings_once, settings_init);
	memset(hp, 0, sizeof(*hp));
	llhttp_init(&hp->p, HTTP_REQUEST, &settings);
	hp->p.data = hp;
	hp->max_header_bytes = max_header_bytes;
	hp->max_body_bytes = max_body_bytes;
	buf_init(&hp->field);
	buf_init(&hp->value);
}

void
http_parser_fini(struct http_parser *hp)
{
	buf_fini(&hp->field);
	buf_fini(&hp->value);
}

void
http_begin(struct http_parser *hp, struct http_req *req)
{
	struct arena *a = req->arena;

	memset(req, 0, sizeof(*req));
	req->arena = a;
	buf_init(&req->body);
	hp->req = req;
	hp->header_bytes = hp->body_wire_bytes = hp->ext_bytes = 0;
	hp->field.len = hp->value.len = 0;
	hp->head_done = hp->head_reported = hp->msg_done = 0;
	hp->msg_bytes = hp->gap = 0;
	hp->prev_byte = 0;
	hp->status = 0;
	hp->reason = NULL;
}

static int
count_header_bytes(struct http_parser *hp, size_t n)
{
	hp->header_bytes += n;
	if (hp->header_bytes > hp->max_header_bytes)
		return fail(hp, 431, "request header fields too large");
	return 0;
}

static int
on_message_begin(llhttp_t *p)
{
	(void)p;
	return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t n)
{
	struct http_parser *hp = hp_of(p);

	if (count_header_bytes(hp, n))
		return HPE_USER;
	/* The target is assembled in the value buffer, then moved. */
	if (buf_add(&hp->value, at, n) == -1)
		return fail(hp, 431, "out of memory");
	return 0;
}

static int
store_header(struct http_parser *hp)
{
	struct http_req *r = hp->req;
	struct http_header *h;
	size_t cap;

	if (hp->field.len == 0)
		return fail(hp, 400, "empty header field name");
	if (r->nhdrs == HTTP_MAX_HEADERS)
		return fail(hp, 431, "too many header fields");
	if (r->nhdrs == r->caphdrs) {
		cap = r->caphdrs ? r->caphdrs * 2 : 16;
		h = arena_alloc(r->arena, cap * sizeof(*h));
		if (h == NULL)
			return fail(hp, 431, "out of memory");
		if (r->nhdrs)
			memcpy(h, r->hdrs, r->nhdrs * sizeof(*h));
		r->hdrs = h;
		r->caphdrs = cap;
	}
	/* A field value has no trailing whitespace (RFC 9110, 5.5); llhttp
	 * drops the leading part only. */
	while (hp->value.len && (hp->value.p[hp->value.len - 1] == ' ' ||
	    hp->value.p[hp->value.len - 1] == '\t'))
		hp->value.len--;
	h = &r->hdrs[r->nhdrs];
	h->name = arena_strndup(r->arena, hp->field.p ? hp->field.p : "",
	    hp->field.len);
	h->value = arena_strndup(r->arena, hp->value.p ? hp->value.p : "",
	    hp->value.len);
	if (h->name == NULL || h->value == NULL)
		return fail(hp, 431, "out of memory");
	r->nhdrs++;
	hp->field.len = hp->value.len = 0;
	return 0;
}

static int
on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct http_parser *hp = hp_of(p);

	/* A field after the head is a chunked trailer: WHM or a proxy in
	 * between might merge it into the head, so refuse it. */
	if (hp->head_done)
		return fail(hp, 400, "trailer fields are not accepted");
	if (count_header_bytes(hp, n))
		return HPE_USER;
	if (hp->req->target == NULL) {
		hp->req->target = arena_strndup(hp->req->arena,
		    hp->value.p ? hp->value.p : "", hp->value.len);
		hp->value.len = 0;
	}
	if (buf_add(&hp->field, at, n) == -1)
		return fail(hp, 431, "out of memory");
	return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct http_parser *hp = hp_of(p);

	if (count_header_bytes(hp, n))
		return HPE_USER;
	if (memchr(at, '\r', n) || memchr(at, '\n', n))
		return fail(hp, 400, "folded header field (obs-fold)");
	if (buf_add(&hp->value, at, n) == -1)
		return fail(hp, 431, "out of memory");
	return 0;
}

static int
on_header_value_complete(llhttp_t *p)
{
	return store_header(hp_of(p));
}

static int
framing_checks(struct http_parser *hp)
{
	struct http_req *r = hp->req;
	size_t i;
	const char *n;
	int nte = 0;

	for (i = 0; i < r->nhdrs; i++) {
		n = r->hdrs[i].name;
		if (strcasecmp(n, "host") == 0) {
			r->host = r->hdrs[i].value;
			r->nhost++;
		} else if (strcasecmp(n, "authorization") == 0) {
			r->authorization = r->hdrs[i].value;
			r->nauthorization++;
		} else if (strcasecmp(n, "content-type") == 0) {
			r->content_type = r->hdrs[i].value;
			r->ncontent_type++;
		} else if (strcasecmp(n, "content-encoding") == 0) {
			r->content_encoding = r->hdrs[i].value;
		} else if (strcasecmp(n, "upgrade") == 0) {
			return fail(hp, 400, "Upgrade is not supported");
		} else if (strcasecmp(n, "transfer-encoding") == 0) {
			/* A single "chunked" and nothing else: a coding
			 * list could be framed differently upstream. */
			if (nte++ || strcasecmp(r->hdrs[i].value, "chunked") != 0)
				return fail(hp, 400, "unsupported Transfer-Encoding");
		}
	}
	if (!(r->major == 1 && (r->minor == 0 || r->minor == 1)))
		return fail(hp, 400, "unsupported HTTP version");
	if (r->nhost != 1)
		return fail(hp, 400, r->nhost ? "more than one Host header" :
		    "missing Host header");
	if (r->nauthorization > 1)
		return fail(hp, 400, "more than one Authorization header");
	if (r->ncontent_type > 1)
		return fail(hp, 400, "more than one Content-Type header");
	/* llhttp has already refused CL with TE, two CLs and any TE but a
	 * final chunked; a single chunked is all that is left. */
	r->has_body = (hp->p.flags & F_CHUNKED) ||
	    ((hp->p.flags & F_CONTENT_LENGTH) && hp->p.content_length > 0);
	if ((hp->p.flags & F_TRANSFER_ENCODING) && !(hp->p.flags & F_CHUNKED))
		return fail(hp, 400, "unsupported Transfer-Encoding");
	if (r->has_body && r->method_id == HTTP_GET)
		return fail(hp, 400, "GET with a body");
	/* HTTP/1.0 has no chunked coding: such framing is faulty (RFC 9112,
	 * 6.1), and a 1.0 intermediary would read it differently. */
	if ((hp->p.flags & F_CHUNKED) && r->minor == 0)
		return fail(hp, 400, "chunked framing in HTTP/1.0");
	if ((hp->p.flags & F_CONTENT_LENGTH) &&
	    hp->p.content_length > hp->max_body_bytes)
		return fail(hp, 413, "request body too large");
	return 0;
}

static int
on_headers_complete(llhttp_t *p)
{
	struct http_parser *hp = hp_of(p);
	struct http_req *r = hp->req;

	if (r->target == NULL) {
		r->target = arena_strndup(r->arena, hp->value.p ? hp->value.p :
		    "", hp->value.len);
		hp->value.len = 0;
	}
	if (r->target == NULL)
		return fail(hp, 431, "out of memory");
	r->method_id = p->method;
	r->method = llhttp_method_name((llhttp_method_t)p->method);
	r->major = p->http_major;
	r->minor = p->http_minor;
	r->upgrade = p->upgrade;
	if (framing_checks(hp))
		return HPE_USER;
	hp->head_done = 1;
	return HPE_PAUSED;
}

static int
on_body(llhttp_t *p, const char *at, size_t n)
{
	struct http_parser *hp = hp_of(p);
	struct http_req *r = hp->req;

	/* The framing bytes since the previous piece of body: a chunk-size
	 * line with its extensions, and CRLFs. */
	hp->gap += (size_t)(at - hp->mark);
	if (hp->gap > HTTP_MAX_CHUNK_LINE + 8)
		return fail(hp, 400, "chunk-size line too long");
	hp->gap = 0;
	hp->mark = at + n;
	if (n > hp->max_body_bytes || r->body.len > hp->max_body_bytes - n)
		return fail(hp, 413, "request body too large");
	if (buf_add(&r->body, at, n) == -1)
		return fail(hp, 413, "out of memory");
	return 0;
}

static int
on_chunk_ext(llhttp_t *p, const char *at, size_t n)
{
	struct http_parser *hp = hp_of(p);

	(void)at;
	hp->ext_bytes += n;
	if (hp->ext_bytes > HTTP_MAX_CHUNK_LINE)
		return fail(hp, 400, "chunk extensions too long");
	return 0;
}

static int
on_chunk_header(llhttp_t *p)
{
	hp_of(p)->ext_bytes = 0;
	return 0;
}

static int
on_message_complete(llhttp_t *p)
{
	struct http_parser *hp = hp_of(p);

	hp->req->keep_alive = llhttp_should_keep_alive(p);
	hp->msg_done = 1;
	return HPE_PAUSED;
}

static const char *
llhttp_reason(llhttp_errno_t e)
{
	switch (e) {
	case HPE_INVALID_METHOD:
		return "invalid method";
	case HPE_INVALID_URL:
		return "invalid request target";
	case HPE_INVALID_VERSION:
		return "invalid HTTP version";
	case HPE_INVALID_HEADER_TOKEN:
		return "invalid header field";
	case HPE_INVALID_CONTENT_LENGTH:
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		return "invalid Content-Length";
	case HPE_INVALID_TRANSFER_ENCODING:
		return "invalid Transfer-Encoding";
	case HPE_INVALID_CHUNK_SIZE:
		return "invalid chunk size";
	case HPE_LF_EXPECTED:
	case HPE_CR_EXPECTED:
	case HPE_STRICT:
		return "malformed line ending";
	default:
		return "malformed request";
	}
}

/* What llhttp lets pass in the head, seen in the raw bytes (which all
 * belong to the head: llhttp pauses at its end): a line folded onto the
 * previous one (obs-fold: LF then SP or HTAB), and a bare LF. */
static int
raw_head_checks(struct http_parser *hp, const char *p, size_t n)
{
	size_t i;
	char prev = hp->prev_byte;

	for (i = 0; i < n; prev = p[i], i++) {
		if (prev == '\n' && (p[i] == ' ' || p[i] == '\t'))
			return fail(hp, 400, "folded header field (obs-fold)");
		if (p[i] == '\n' && prev != '\r')
			return fail(hp, 400, "bare LF");
	}
	hp->prev_byte = prev;
	return 0;
}

enum http_event
http_feed(struct http_parser *hp, const char *data, size_t len, size_t *used)
{
	llhttp_errno_t e;
	const char *pos;
	size_t n;

	*used = 0;
	if (hp->status)
		return HEV_ERROR;
	if (hp->msg_done)
		return HEV_DONE;
	hp->mark = data;
	e = llhttp_execute(&hp->p, data, len);
	if (e == HPE_OK) {
		n = len;
	} else if (e == HPE_PAUSED) {
		pos = llhttp_get_error_pos(&hp->p);
		n = pos ? (size_t)(pos - data) : len;
		llhttp_resume(&hp->p);
	} else {
		if (hp->status == 0)
			fail(hp, 400, e == HPE_PAUSED_UPGRADE ?
			    "Upgrade and CONNECT are not supported" :
			    llhttp_reason(e));
		*used = len;
		return HEV_ERROR;
	}
	*used = n;
	hp->msg_bytes += n;
	if (!hp->head_reported && raw_head_checks(hp, data, n) != 0)
		return HEV_ERROR;
	if (hp->head_reported) {
		hp->gap += (size_t)(data + n - hp->mark);
		if (hp->gap > HTTP_MAX_CHUNK_LINE + 8) {
			fail(hp, 400, "chunk-size line too long");
			return HEV_ERROR;
		}
	}
	if (hp->head_done && !hp->head_reported) {
		/* Paused in on_headers_complete: the caller decides before
		 * any body byte is read. */
		hp->head_reported = 1;
		return HEV_HEAD;
	}
	/* Bound the framing bytes too: chunk-size lines and their leading
	 * zeros are not counted in the body. */
	hp->body_wire_bytes += n;
	if (hp->body_wire_bytes > 2 * hp->max_body_bytes + 65536) {
		fail(hp, 413, "request body too large");
		return HEV_ERROR;
	}
	return hp->msg_done ? HEV_DONE : HEV_MORE;
}

enum http_event
http_eof(struct http_parser *hp)
{
	if (hp->msg_bytes == 0)
		return HEV_MORE;
	if (hp->msg_done)
		return HEV_MORE;
	fail(hp, 400, "connection closed mid-request");
	return HEV_ERROR;
}

const char *
http_header(const struct http_req *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nhdrs; i++)
		if (strcasecmp(req->hdrs[i].name, name) == 0)
			return req->hdrs[i].value;
	return NULL;
}

const char *
http_status_text(int s)
{
	switch (s) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}
