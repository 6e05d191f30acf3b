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
	char decision[16];   /* allow, unauthenticated, forbidden, ... */
	unsigned long long n;
};

/* One latency histogram per function label. */
struct fhist {
	char function[129];
	unsigned long long b[NBUCKETS + 1], count;
	double sum;
};
#define METRICS_FNS 512

static uv_mutex_t mu;
static struct set sets[METRICS_SETS];
static size_t nsets;
static struct fhist fh[METRICS_FNS];
static size_t nfh;
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
	size_t i, j;

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
	for (j = 0; j < nfh; j++)
		if (strcmp(fh[j].function, fn) == 0)
			break;
	if (j == nfh && nfh < METRICS_FNS)
		snprintf(fh[nfh++].function, sizeof(fh[0].function), "%s", fn);
	if (j == nfh)
		j = nfh - 1;          /* full: the last set takes the rest */
	for (i = 0; i < NBUCKETS && seconds > buckets[i]; i++)
		;
	fh[j].b[i]++;
	fh[j].count++;
	fh[j].sum += seconds;
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
    const struct metrics_audit *au, int draining)
{
	unsigned long long kinds_sum = au->fail_write + au->fail_fsync +
	    au->fail_reopen;
	unsigned long long cum;
	size_t i, j;

	uv_mutex_lock(&mu);
	buf_adds(o, "# HELP whmgate_requests_total Calls by client, function and decision.\n"
	    "# TYPE whmgate_requests_total counter\n");
	for (i = 0; i < nsets; i++)
		buf_printf(o, "whmgate_requests_total{client=\"%s\",function=\"%s\","
		    "decision=\"%s\"} %llu\n", sets[i].client, sets[i].function,
		    sets[i].decision, sets[i].n);
	buf_adds(o, "# HELP whmgate_request_duration_seconds Time from the first byte "
	    "of a request to its answer, by function.\n"
	    "# TYPE whmgate_request_duration_seconds histogram\n");
	for (j = 0; j < nfh; j++) {
		cum = 0;
		for (i = 0; i < NBUCKETS; i++) {
			cum += fh[j].b[i];
			buf_printf(o, "whmgate_request_duration_seconds_bucket{function=\"%s\","
			    "le=\"%g\"} %llu\n", fh[j].function, buckets[i], cum);
		}
		buf_printf(o, "whmgate_request_duration_seconds_bucket{function=\"%s\","
		    "le=\"+Inf\"} %llu\n"
		    "whmgate_request_duration_seconds_sum{function=\"%s\"} %.6f\n"
		    "whmgate_request_duration_seconds_count{function=\"%s\"} %llu\n",
		    fh[j].function, fh[j].count, fh[j].function, fh[j].sum,
		    fh[j].function, fh[j].count);
	}
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
	    "# HELP whmgate_audit_failures_total Audit failures by kind: write, "
	    "fsync, reopen (after SIGUSR1), queue (records refused while the "
	    "trail was faulted or its queue full).\n"
	    "# TYPE whmgate_audit_failures_total counter\n"
	    "whmgate_audit_failures_total{kind=\"write\"} %llu\n"
	    "whmgate_audit_failures_total{kind=\"fsync\"} %llu\n"
	    "whmgate_audit_failures_total{kind=\"reopen\"} %llu\n"
	    "whmgate_audit_failures_total{kind=\"queue\"} %llu\n"
	    "# HELP whmgate_audit_seq The seq of the last audit line written.\n"
	    "# TYPE whmgate_audit_seq gauge\n"
	    "whmgate_audit_seq %llu\n"
	    "# HELP whmgate_syslog_dropped_total Audit lines the syslog copy "
	    "could not send.\n"
	    "# TYPE whmgate_syslog_dropped_total counter\n"
	    "whmgate_syslog_dropped_total %llu\n"
	    "# HELP whmgate_audit_writable 1 while the audit trail can be written.\n"
	    "# TYPE whmgate_audit_writable gauge\n"
	    "whmgate_audit_writable %d\n"
	    "# HELP whmgate_draining 1 while shutting down.\n"
	    "# TYPE whmgate_draining gauge\n"
	    "whmgate_draining %d\n"
	    "# HELP whmgate_connections Open client connections.\n"
	    "# TYPE whmgate_connections gauge\n"
	    "whmgate_connections %llu\n",
	    au->records, au->fail_write, au->fail_fsync, au->fail_reopen,
	    au->failures > kinds_sum ? au->failures - kinds_sum : 0, au->seq,
	    au->syslog_dropped, au->writable, draining, connections);
}

void
metrics_render_conf(struct buf *o, const struct conf *c)
{
	size_t i;

	buf_printf(o, "# HELP whmgate_build_info The running version.\n"
	    "# TYPE whmgate_build_info gauge\n"
	    "whmgate_build_info{version=\"%s\"} 1\n", WHMGATE_VERSION);
	buf_adds(o, "# HELP whmgate_client_key_expiry_timestamp_seconds When a "
	    "client's keys expire (its \"expires\"), unix seconds.\n"
	    "# TYPE whmgate_client_key_expiry_timestamp_seconds gauge\n");
	/* Client ids are [A-Za-z0-9_.-]: nothing to escape in a label. */
	for (i = 0; c && i < c->nclients; i++)
		if (c->clients[i].expires != 0)
			buf_printf(o, "whmgate_client_key_expiry_timestamp_seconds"
			    "{client=\"%s\"} %lld\n", c->clients[i].id,
			    (long long)c->clients[i].expires);
}

const char *const metrics_decisions[METRICS_NDECISIONS] = {
	"allow", "unauthenticated", "forbidden", "rate_limited", "bad_request",
	"unavailable"
};

void
metrics_client_totals(const char *client, unsigned long long out[METRICS_NDECISIONS])
{
	size_t i, d;

	memset(out, 0, METRICS_NDECISIONS * sizeof(out[0]));
	uv_mutex_lock(&mu);
	for (i = 0; i < nsets; i++) {
		if (strcmp(sets[i].client, client) != 0)
			continue;
		for (d = 0; d < METRICS_NDECISIONS; d++)
			if (strcmp(sets[i].decision, metrics_decisions[d]) == 0)
				out[d] += sets[i].n;
	}
	uv_mutex_unlock(&mu);
}

size_t
metrics_upstream_kinds(char kind[][16], unsigned long long *n, size_t max)
{
	size_t i;

	uv_mutex_lock(&mu);
	for (i = 0; i < max && i < METRICS_KINDS && kinds[i].kind[0]; i++) {
		memcpy(kind[i], kinds[i].kind, sizeof(kinds[i].kind));
		n[i] = kinds[i].n;
	}
	uv_mutex_unlock(&mu);
	return i;
}

void
metrics_candidate_totals(const char *client, unsigned long long *would_refuse,
    unsigned long long *would_allow)
{
	size_t i;

	*would_refuse = *would_allow = 0;
	uv_mutex_lock(&mu);
	for (i = 0; i < METRICS_CAND && cand[i].client[0]; i++)
		if (strcmp(cand[i].client, client) == 0) {
			*would_refuse = cand[i].n[0];
			*would_allow = cand[i].n[1];
		}
	uv_mutex_unlock(&mu);
}
