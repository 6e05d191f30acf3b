/* metrics.h - counters for /metrics (SPEC section 9), Prometheus text.
 * Label values never come straight from a request: the client label is a
 * configured client id or "unknown", the function label a function named in
 * some client's allow or "other". Safe from any thread. */
#ifndef WHMGATE_METRICS_H
#define WHMGATE_METRICS_H

struct conf;
struct buf;

void metrics_init(void);
/* One finished call: decision is "allow" or "deny". */
void metrics_request(const struct conf *c, const char *client,
    const char *function, const char *decision, double seconds);
void metrics_upstream_error(const char *kind);
/* A call on which the client's candidate decided otherwise (section 12):
 * would_refuse when allow let it through, else would_allow. */
void metrics_candidate(const struct conf *c, const char *client, int allowed);
void metrics_reload(int ok);
/* Appends the exposition; the gauges and audit counters are passed in. */
void metrics_render(struct buf *out, unsigned long long connections,
    unsigned long long audit_records, unsigned long long audit_failures,
    int audit_writable, int draining);

#endif
