/* admin.h - the admin listener: GET /healthz, /readyz, /metrics. One
 * request per connection; the answer closes it. */
#ifndef WHMGATE_ADMIN_H
#define WHMGATE_ADMIN_H

struct server;

/* Binds s->conf->admin if set. Returns 0, or -1 after logging. */
int admin_listen(struct server *s);
void admin_stop(struct server *s);

#endif
