/* metrics.h - counters for /metrics (SPEC section 9), Prometheus text.
 * Label values never come straight from a request: the client label is a
 * configured client id or "unknown", the function label a function named in
 * some client's allow or "other". Safe from any thread. */
#ifndef WHMGATE_METRICS_H
#define WHMGATE_METRICS_H

#include <stddef.h>

struct conf;
struct buf;

void metrics_init(void);
/* One finished call: decision is "allow", "unauthenticated", "forbidden",
 * "rate_limited", "bad_request" or "unavailable"; function the allow entry
 * (cpanel:M::f and uapi_cpanel:M::f included). */
void metrics_request(const struct conf *c, const char *client,
    const char *function, const char *decision, double seconds);
void metrics_upstream_error(const char *kind);
/* A call on which the client's candidate decided otherwise (section 12):
 * would_refuse when allow let it through, else would_allow. */
void metrics_candidate(const struct conf *c, const char *client, int allowed);
void metrics_reload(int ok);
/* What the audit trail says, for the exposition. */
struct metrics_audit {
	unsigned long long records, failures;       /* failures: all kinds */
	unsigned long long fail_write, fail_fsync, fail_reopen;
	unsigned long long seq, syslog_dropped;
	int writable;
};
/* Appends the exposition; the gauges and audit counters are passed in. */
void metrics_render(struct buf *out, unsigned long long connections,
    const struct metrics_audit *au, int draining);
/* Appends what the config in force says: whmgate_build_info{version} and
 * whmgate_client_key_expiry_timestamp_seconds{client} for each client with
 * an "expires" (c may be NULL: build info only). */
void metrics_render_conf(struct buf *out, const struct conf *c);

/* The decision labels, and per client the calls counted under each (for
 * the status page). */
#define METRICS_NDECISIONS 6
extern const char *const metrics_decisions[METRICS_NDECISIONS];
void metrics_client_totals(const char *client,
    unsigned long long out[METRICS_NDECISIONS]);
/* A client's candidate mismatches (for the status page). */
void metrics_candidate_totals(const char *client,
    unsigned long long *would_refuse, unsigned long long *would_allow);
/* Failed calls to WHM by kind: fills up to max entries, returns how many. */
size_t metrics_upstream_kinds(char kind[][16], unsigned long long *n,
    size_t max);

#endif
