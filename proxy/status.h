/* status.h - the admin listener's GET /status: an HTML page an operator
 * reads at a glance, as HAProxy's stats page (SPEC section 9): per client
 * its calls and refusals by kind, calls in flight, rate tokens left and key
 * expiry; the WHM connection pool and its errors; the audit trail. Server
 * rendered, no JavaScript, no secret, no parameter value. */
#ifndef WHMGATE_STATUS_H
#define WHMGATE_STATUS_H

#include <time.h>

struct audit;
struct buf;
struct conf;

/* Appends the page for conf c (NULL: none loaded) and trail a. */
void status_render(struct buf *out, const struct conf *c, struct audit *a,
    unsigned long long connections, int draining, time_t now);

#endif
