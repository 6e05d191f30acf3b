/* http.h - an llhttp wrapper that turns client bytes into struct http_req.
 * No sockets and no policy: it can be fed any bytes (and is fuzzed). It
 * applies SPEC section 4's framing rules, the header size limit and the body
 * size limit, and stops at two points: when the head is complete (so the
 * caller can refuse before reading a body) and when the message is. */
#ifndef WHMGATE_HTTP_H
#define WHMGATE_HTTP_H

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct http_header {
	char *name;
	char *value;
};

struct http_req {
	struct arena *arena;     /* strings live here; owned by the caller */
	const char *method;      /* "GET", "POST", ... */
	int method_id;           /* llhttp_method_t */
	char *target;            /* the raw request target */
	int major, minor;
	struct http_header *hdrs;
	size_t nhdrs, caphdrs;
	/* Headers whmgate reads; NULL when absent. Repeats are counted. */
	const char *host, *authorization, *content_type, *content_encoding;
	int nhost, nauthorization, ncontent_type;
	int has_body;            /* Content-Length > 0 or chunked */
	int upgrade;             /* CONNECT: the bytes after the head are no request */
	int keep_alive;          /* set when the message is complete */
	struct buf body;         /* owned: buf_fini it */
};

enum http_event {
	HEV_MORE,   /* all bytes consumed, message not complete */
	HEV_HEAD,   /* head complete and passes framing checks */
	HEV_DONE,   /* message complete */
	HEV_ERROR   /* status and reason set; the connection must close */
};

struct http_parser {
	llhttp_t p;
	struct http_req *req;
	size_t max_header_bytes, max_body_bytes;
	size_t header_bytes, body_wire_bytes, ext_bytes;
	struct buf field, value; /* the header being assembled */
	int head_done, head_reported, msg_done;
	const char *mark;        /* end of the last body piece in this buffer */
	size_t gap;              /* framing bytes since the last body byte */
	size_t msg_bytes;        /* bytes of this message consumed so far */
	char prev_byte;          /* last head byte of the previous buffer */
	int status;              /* on HEV_ERROR: 400, 413 or 431 */
	const char *reason;
};

/* Sets up a parser; limits as in the config. */
void http_parser_init(struct http_parser *hp, size_t max_header_bytes,
    size_t max_body_bytes);
void http_parser_fini(struct http_parser *hp);
/* Starts a new message that will fill req (req->arena must be set). */
void http_begin(struct http_parser *hp, struct http_req *req);
/* Feeds bytes; *used says how many were consumed. After HEV_HEAD, call
 * again with the rest to read the body; after HEV_DONE, the bytes after
 * *used belong to the next message (pipelining). */
enum http_event http_feed(struct http_parser *hp, const char *data, size_t len,
    size_t *used);
/* Tells the parser the peer closed: returns HEV_ERROR if a message was
 * cut short, HEV_MORE if nothing was pending. */
enum http_event http_eof(struct http_parser *hp);
/* The reason phrase of an HTTP status ("Not Found"), "Status" if unknown. */
const char *http_status_text(int status);
/* First header of that name (case-insensitive), or NULL. */
const char *http_header(const struct http_req *req, const char *name);

#endif
