/* admin.h - the admin listener: GET or HEAD /healthz, /readyz, /metrics,
 * /status
 * (HTTP/1.0 without Host as well as 1.1). One
 * request per connection; the answer closes it. */
#ifndef WHMGATE_ADMIN_H
#define WHMGATE_ADMIN_H

#include <uv.h>

struct audit;
struct conf;

/* Binds addr (host:port; NULL: no admin listener) on loop, reporting on
 * audit. Returns 0, or -1 after logging. */
int admin_listen(uv_loop_t *loop, const char *addr, struct audit *audit);
/* The config in force, for /metrics: the admin listener keeps a
 * reference until the next call or admin_stop. Main loop only. */
void admin_set_conf(struct conf *c);
/* /readyz answers 503 from now on. */
void admin_set_draining(void);
void admin_stop(void);

#endif
