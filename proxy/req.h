/* req.h - one request, from its first byte to its last audit record: the
 * checks on its head and message, the request record and its durability,
 * the call to WHM and the streamed answer, refusals, and the records.
 *
 * A connection (conn.c) creates a request when bytes of one arrive, hands
 * it the parser's events, and ends it with exactly one of req_end() (the
 * answer is on the wire) or req_abort() (the connection closes first).
 * Every path through a request ends in conn_request_done(), once. */
#ifndef WHMGATE_REQ_H
#define WHMGATE_REQ_H

struct conn;
struct conn_peer;
struct http_parser;
struct req;

/* A new request on connection c, which parses it with hp (borrowed while
 * the request is attached). owner is the connection set's owner (the
 * server). NULL when out of memory. */
struct req *req_new(struct conn *c, void *owner, const struct conn_peer *peer,
    struct http_parser *hp);
/* 1 while the request still reads its message. */
int req_reading(const struct req *r);
/* The head is complete (HEV_HEAD): the checks that need no body. */
void req_head(struct req *r);
/* The message is complete (HEV_DONE): parameters, policy, record, call. */
void req_message(struct req *r);
/* The parser refused the bytes (HEV_ERROR): status 400/413/431. */
void req_bad_framing(struct req *r, int status, const char *reason);
/* The head or body did not arrive in time: 408. */
void req_timeout(struct req *r);
/* The peer closed while the message was being read. */
void req_peer_closed(struct req *r);
/* The connection's backlog fell below its low-water mark. */
void req_drained(struct req *r);
/* The answer is on the wire: writes what is still to be recorded, frees. */
void req_end(struct req *r);
/* The connection closes under the request: why is the code its record
 * gets ("client_closed", "client_stalled", "shutdown_deadline"). Records
 * the end, cancels the call, and frees the request, or detaches it while
 * its request record is being written (freed when that is done). */
void req_abort(struct req *r, const char *why);

#endif
