/* status.c - see status.h. The page reads the counters the metrics, limits,
 * upstream and audit modules keep; it holds no state of its own. Every
 * string on it comes from the config or from fixed words, and is escaped
 * all the same. Numbers carry a data-k attribute naming what they count,
 * so a test can read the page as a person sees it and compare. */
#include "status.h"
#include "audit.h"
#include "conf.h"
#include "limits.h"
#include "metrics.h"
#include "upstream.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void
esc(struct buf *o, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': buf_adds(o, "&lt;"); break;
		case '>': buf_adds(o, "&gt;"); break;
		case '&': buf_adds(o, "&amp;"); break;
		case '"': buf_adds(o, "&quot;"); break;
		default: buf_addc(o, *s); break;
		}
	}
}

/* <td data-k="KEY">N</td>, with class "bad" when bad and N > 0. */
static void
num(struct buf *o, const char *k1, const char *k2, unsigned long long n, int bad)
{
	buf_adds(o, "<td class=\"n");
	if (bad && n)
		buf_adds(o, " bad");
	buf_adds(o, "\" data-k=\"");
	esc(o, k1);
	if (k2) {
		buf_addc(o, '.');
		esc(o, k2);
	}
	buf_adds(o, "\">");
	buf_addu(o, n);
	buf_adds(o, "</td>");
}

static void
when(struct buf *o, int64_t t, time_t now)
{
	char ts[32];
	struct tm tm;
	time_t tt = (time_t)t;
	double days;

	if (t == 0) {
		buf_adds(o, "<td>never</td>");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M UTC", &tm);
	days = difftime(tt, now) / 86400.0;
	buf_printf(o, "<td class=\"%s\">%s (%s%.0f days)</td>",
	    days < 0 ? "bad" : days < 14 ? "warn" : "", ts,
	    days < 0 ? "expired " : "in ", days < 0 ? -days : days);
}

static const char head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta http-equiv=\"refresh\" content=\"10\">"
    "<title>whmgate status</title><style>"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25em .6em}"
    "th{background:#eef;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".bad{background:#fdd;color:#900;font-weight:bold}.warn{background:#ffd}"
    ".ok{background:#dfd}.muted{color:#777}</style></head><body>\n";

void
status_render(struct buf *o, const struct conf *c, struct audit *a,
    unsigned long long connections, int draining, time_t now)
{
	static const char *const label[METRICS_NDECISIONS] = {
		"allowed", "401 unauthenticated", "403 forbidden",
		"429 rate limited", "400 bad request", "503 unavailable"
	};
	unsigned long long tot[METRICS_NDECISIONS], errs[8], seq, fw, ff, fr;
	double since;
	char kinds[8][16];
	size_t i, d, nk, open, idle, waiting;
	int writable = audit_writable(a);
	char ts[32];
	struct tm tm;

	buf_adds(o, head);
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S UTC", &tm);
	buf_adds(o, "<h1>whmgate ");
	esc(o, WHMGATE_VERSION);
	buf_adds(o, " &mdash; ");
	esc(o, c ? c->instance : "");
	buf_adds(o, "</h1><p class=\"muted\">");
	buf_adds(o, ts);
	buf_printf(o, " &middot; %s &middot; open client connections: "
	    "<span data-k=\"connections\">%llu</span></p>\n",
	    draining ? "<b class=\"bad\">draining</b>" :
	    writable ? "<b class=\"ok\">ready</b>" :
	    "<b class=\"bad\">not ready: audit trail not writable</b>",
	    connections);

	buf_adds(o, "<h2>Clients</h2><table><tr><th>client</th>");
	for (d = 0; d < METRICS_NDECISIONS; d++)
		buf_printf(o, "<th>%s</th>", label[d]);
	buf_adds(o, "<th>candidate would refuse</th><th>candidate would allow</th>"
	    "<th>in flight</th><th>rate tokens left</th>"
	    "<th>keys expire</th></tr>\n");
	for (i = 0; c && i < c->nclients; i++) {
		const struct client *cl = &c->clients[i];
		double tokens = -1;
		long inflight = 0;
		unsigned long long wr, wa;

		metrics_client_totals(cl->id, tot);
		buf_adds(o, "<tr><th>");
		esc(o, cl->id);
		buf_adds(o, "</th>");
		for (d = 0; d < METRICS_NDECISIONS; d++)
			num(o, cl->id, metrics_decisions[d], tot[d], d > 0);
		metrics_candidate_totals(cl->id, &wr, &wa);
		if (cl->has_candidate) {
			num(o, cl->id, "would_refuse", wr, 1);
			num(o, cl->id, "would_allow", wa, 1);
		} else {
			buf_adds(o, "<td class=\"muted\">no candidate</td><td></td>");
		}
		if (limits_peek(cl->id, &tokens, &inflight) == -1) {
			tokens = -1;
			inflight = 0;
		}
		num(o, cl->id, "inflight", (unsigned long long)inflight, 0);
		if (!cl->has_rate)
			buf_adds(o, "<td class=\"muted\">no limit</td>");
		else
			buf_printf(o, "<td class=\"n\">%.1f of %.0f</td>",
			    tokens < 0 ? cl->rate_burst : tokens, cl->rate_burst);
		when(o, cl->expires, now);
		buf_adds(o, "</tr>\n");
	}
	metrics_client_totals("unknown", tot);
	buf_adds(o, "<tr><th class=\"muted\">unknown</th>");
	for (d = 0; d < METRICS_NDECISIONS; d++)
		num(o, "unknown", metrics_decisions[d], tot[d], d > 0);
	buf_adds(o, "<td></td><td></td><td></td><td></td><td></td></tr></table>\n");

	upstream_pool(&open, &idle, &waiting);
	nk = metrics_upstream_kinds(kinds, errs, 8);
	buf_adds(o, "<h2>WHM</h2><table><tr><th>upstream</th><td>");
	esc(o, c ? c->upstream.base : "");
	buf_adds(o, "</td></tr><tr><th>connections open / idle</th>");
	buf_printf(o, "<td><span data-k=\"upstream.open\">%zu</span> / "
	    "<span data-k=\"upstream.idle\">%zu</span> (at most %ld per worker)"
	    "</td></tr>", open, idle, c ? c->upstream.max_connections : 0L);
	buf_adds(o, "<tr><th>calls waiting for a connection</th>");
	num(o, "upstream", "waiting", waiting, 1);
	buf_adds(o, "</tr>");
	for (i = 0; i < nk; i++) {
		buf_adds(o, "<tr><th>errors: ");
		esc(o, kinds[i]);
		buf_adds(o, "</th>");
		num(o, "upstream.errors", kinds[i], errs[i], 1);
		buf_adds(o, "</tr>");
	}
	if (nk == 0)
		buf_adds(o, "<tr><th>errors</th><td class=\"n ok\">none</td></tr>");
	buf_adds(o, "</table>\n");

	buf_adds(o, "<h2>Audit trail</h2><table><tr><th>file</th><td>");
	esc(o, c ? c->audit.file : "");
	buf_adds(o, "</td></tr><tr><th>fsync</th><td>");
	buf_adds(o, !c ? "" : c->audit.fsync == FSYNC_ALWAYS ? "always" :
	    c->audit.fsync == FSYNC_INTERVAL ? "interval" : "never");
	buf_printf(o, "</td></tr><tr><th>state</th><td class=\"%s\">%s</td></tr>",
	    writable ? "ok" : "bad", writable ? "writable" : "NOT WRITABLE");
	audit_position(a, &seq, &since);
	audit_failure_kinds(a, &fw, &ff, &fr);
	buf_adds(o, "<tr><th>last line (seq)</th>");
	num(o, "audit", "seq", seq, 0);
	buf_adds(o, "</tr><tr><th>last fsync</th>");
	if (since < 0)
		buf_adds(o, "<td class=\"muted\">none yet</td>");
	else
		buf_printf(o, "<td class=\"n\">%.1f s ago</td>", since / 1000);
	buf_adds(o, "</tr><tr><th>records written</th>");
	num(o, "audit", "records", audit_records_total(a), 0);
	buf_adds(o, "</tr><tr><th>failures (all kinds)</th>");
	num(o, "audit", "failures", audit_failures_total(a), 1);
	buf_adds(o, "</tr><tr><th>&nbsp;&nbsp;write / fsync / reopen</th>");
	buf_printf(o, "<td class=\"n%s\">%llu / %llu / %llu</td></tr>",
	    fw + ff + fr ? " bad" : "", fw, ff, fr);
	buf_adds(o, "<tr><th>syslog lines dropped</th>");
	num(o, "audit", "syslog_dropped", audit_syslog_dropped(a), 1);
	buf_adds(o, "</tr></table>\n<p class=\"muted\">No secret and no parameter "
	    "value is shown here. Machine-readable: <a href=\"/metrics\">/metrics"
	    "</a>.</p></body></html>\n");
}
