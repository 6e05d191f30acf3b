/* conn.h - one client connection and the request it serves. */
#ifndef WHMGATE_CONN_H
#define WHMGATE_CONN_H

#include <uv.h>

struct server;

/* Accepts one connection from listener ls. Returns 0 or -1. */
int conn_accept(struct server *s, uv_stream_t *ls);
/* At the shutdown deadline: cut every connection; running calls get their
 * response record. */
void conn_close_all(struct server *s);

#endif
