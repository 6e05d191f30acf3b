/* metrics.c - see metrics.h. A fixed table of label sets, bounded by the
 * config (clients x allowed functions x 2); past its size new sets are
 * folded into client="unknown",function="other". */
#include "metrics.h"
#include "conf.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

#define METRICS_SETS 4096
#define METRICS_KINDS 8

/* Upper bounds in seconds: WHM calls take from milliseconds (listaccts on
 * a small box) to minutes (createacct, backups). */
static const double buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300
};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct set {
	char client[65];
	char function[129];
	char decision[8];
	unsigned long long n;
};

static uv_mutex_t mu;
static struct set sets[METRICS_SETS];
static size_t nsets;
static unsigned long long hist[NBUCKETS + 1], hist_count;
static double hist_sum;
static struct {
	char kind[16];
	unsigned long long n;
} kinds[METRICS_KINDS];
static unsigned long long reload_ok, reload_fail;
/* whmgate_candidate_mismatches_total: [client][would_refuse, would_allow],
 * clients by their index in the conf of the call (bounded). */
#define METRICS_CAND 256
static struct {
	char client[65];
	unsigned long long n[2];
} cand[METRICS_CAND];

void
metrics_init(void)
{
	uv_mutex_init(&mu);
}

static int
function_known(const struct conf *c, const char *fn)
{
	size_t i;

	for (i = 0; c && fn && i < c->nclients; i++)
		if (conf_allow(&c->clients[i], fn) ||
		    conf_candidate(&c->clients[i], fn))
			return 1;
	return 0;
}

void
metrics_request(const struct conf *c, const char *client,
    const char *function, const char *decision, double seconds)
{
	const char *cl = client && c && conf_client(c, client) ? client : "unknown";
	const char *fn = function_known(c, function) ? function : "other";
	size_t i;

	uv_mutex_lock(&mu);
	for (i = 0; i < nsets; i++)
		if (strcmp(sets[i].client, cl) == 0 &&
		    strcmp(sets[i].function, fn) == 0 &&
		    strcmp(sets[i].decision, decision) == 0)
			break;
	if (i == nsets && nsets < METRICS_SETS) {
		snprintf(sets[i].client, sizeof(sets[i].client), "%s", cl);
		snprintf(sets[i].function, sizeof(sets[i].function), "%s", fn);
		snprintf(sets[i].decision, sizeof(sets[i].decision), "%s", decision);
		nsets++;
	}
	if (i < nsets)
		sets[i].n++;
	for (i = 0; i < NBUCKETS && seconds > buckets[i]; i++)
		;
	hist[i]++;
	hist_count++;
	hist_sum += seconds;
	uv_mutex_unlock(&mu);
}

void
metrics_upstream_error(const char *kind)
{
	size_t i;

	uv_mutex_lock(&mu);
	for (i = 0; i < METRICS_KINDS && kinds[i].kind[0]; i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			break;
	if (i < METRICS_KINDS) {
		if (kinds[i].kind[0] == '\0')
			snprintf(kinds[i].kind, sizeof(kinds[i].kind), "%s", kind);
		kinds[i].n++;
	}
	uv_mutex_unlock(&mu);
}

void
metrics_candidate(const struct conf *c, const char *client, int allowed)
{
	const char *cl = client && c && conf_client(c, client) ? client : "unknown";
	size_t i;

	uv_mutex_lock(&mu);
	for (i = 0; i < METRICS_CAND && cand[i].client[0]; i++)
		if (strcmp(cand[i].client, cl) == 0)
			break;
	if (i < METRICS_CAND) {
		if (cand[i].client[0] == '\0')
			snprintf(cand[i].client, sizeof(cand[i].client), "%s", cl);
		cand[i].n[allowed ? 0 : 1]++;
	}
	uv_mutex_unlock(&mu);
}

void
metrics_reload(int ok)
{
	uv_mutex_lock(&mu);
	if (ok)
		reload_ok++;
	else
		reload_fail++;
	uv_mutex_unlock(&mu);
}

void
metrics_render(struct buf *o, unsigned long long connections,
    unsigned long long audit_records, unsigned long long audit_failures,
    int audit_writable, int draining)
{
	unsigned long long cum = 0;
	size_t i;

	uv_mutex_lock(&mu);
	buf_adds(o, "# HELP whmgate_requests_total Calls by client, function and decision.\n"
	    "# TYPE whmgate_requests_total counter\n");
	for (i = 0; i < nsets; i++)
		buf_printf(o, "whmgate_requests_total{client=\"%s\",function=\"%s\","
		    "decision=\"%s\"} %llu\n", sets[i].client, sets[i].function,
		    sets[i].decision, sets[i].n);
	buf_adds(o, "# HELP whmgate_request_duration_seconds Time from the first byte "
	    "of a request to its answer.\n"
	    "# TYPE whmgate_request_duration_seconds histogram\n");
	for (i = 0; i < NBUCKETS; i++) {
		cum += hist[i];
		buf_printf(o, "whmgate_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    buckets[i], cum);
	}
	buf_printf(o, "whmgate_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "whmgate_request_duration_seconds_sum %.6f\n"
	    "whmgate_request_duration_seconds_count %llu\n",
	    hist_count, hist_sum, hist_count);
	buf_adds(o, "# HELP whmgate_upstream_errors_total Failed calls to WHM by kind.\n"
	    "# TYPE whmgate_upstream_errors_total counter\n");
	for (i = 0; i < METRICS_KINDS && kinds[i].kind[0]; i++)
		buf_printf(o, "whmgate_upstream_errors_total{kind=\"%s\"} %llu\n",
		    kinds[i].kind, kinds[i].n);
	buf_adds(o, "# HELP whmgate_candidate_mismatches_total Calls the "
	    "candidate policy decided otherwise.\n"
	    "# TYPE whmgate_candidate_mismatches_total counter\n");
	for (i = 0; i < METRICS_CAND && cand[i].client[0]; i++)
		buf_printf(o, "whmgate_candidate_mismatches_total{client=\"%s\","
		    "kind=\"would_refuse\"} %llu\n"
		    "whmgate_candidate_mismatches_total{client=\"%s\","
		    "kind=\"would_allow\"} %llu\n", cand[i].client,
		    cand[i].n[0], cand[i].client, cand[i].n[1]);
	buf_printf(o, "# HELP whmgate_config_reloads_total Reloads by result.\n"
	    "# TYPE whmgate_config_reloads_total counter\n"
	    "whmgate_config_reloads_total{result=\"ok\"} %llu\n"
	    "whmgate_config_reloads_total{result=\"refused\"} %llu\n",
	    reload_ok, reload_fail);
	uv_mutex_unlock(&mu);
	buf_printf(o, "# HELP whmgate_audit_records_total Audit records written.\n"
	    "# TYPE whmgate_audit_records_total counter\n"
	    "whmgate_audit_records_total %llu\n"
	    "# HELP whmgate_audit_failures_total Audit writes or records that failed.\n"
	    "# TYPE whmgate_audit_failures_total counter\n"
	    "whmgate_audit_failures_total %llu\n"
	    "# HELP whmgate_audit_writable 1 while the audit trail can be written.\n"
	    "# TYPE whmgate_audit_writable gauge\n"
	    "whmgate_audit_writable %d\n"
	    "# HELP whmgate_draining 1 while shutting down.\n"
	    "# TYPE whmgate_draining gauge\n"
	    "whmgate_draining %d\n"
	    "# HELP whmgate_connections Open client connections.\n"
	    "# TYPE whmgate_connections gauge\n"
	    "whmgate_connections %llu\n",
	    audit_records, audit_failures, audit_writable, draining, connections);
}
