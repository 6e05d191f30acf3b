/* audit.h - the audit trail (SPEC section 7).
 *
 * Records are built on the event loop (audit_record) as JSON with yajl and
 * handed to one writer thread, which numbers them (seq), chains them (prev),
 * writes them with writev, syncs per audit.fsync, and reports durability
 * back to the loop. Requests that must not go upstream before their record
 * is durable pass a callback; others pass none. */
#ifndef WHMGATE_AUDIT_H
#define WHMGATE_AUDIT_H

#include <stddef.h>
#include <uv.h>

struct conf;
struct call;
struct outcome;
struct buf;

/* Called on the loop once the record is durable (ok = 1) or could not be
 * written (ok = 0). */
typedef void (*audit_cb)(void *arg, int ok);

/* What a request/response/deny record says. Absent fields: NULL / -1. */
struct audit_event {
	const struct conf *conf;    /* the request's: redaction and instance */
	const char *type;           /* "request", "response", "deny" */
	const char *id;
	const char *client_id;
	const char *ip;
	int port;
	const char *auth;
	const char *method, *path;
	int status;                 /* http.status; 0: omit */
	const char *function;
	const char *whm_user;
	const struct call *call;    /* parsed call, if it got that far */
	int with_params;
	const struct outcome *outcome;
	int decision;               /* 1 allow, 0 deny, -1 omit */
	const char *rule, *code, *reason;
	int cand;                   /* 1: decision.candidate (section 12) */
	int cand_allow;
	const char *cand_rule, *cand_code, *cand_reason;
	int up_status;              /* upstream block when up_status >= 0 */
	double up_ms;
	unsigned long long up_bytes;
	const char *up_error;
	double ms;                  /* total; < 0: omit */
};

struct audit;
struct audit_sink;

/* Opens (or continues) the trail in conf's audit.file and starts the
 * writer. Returns NULL with a message in err. */
struct audit *audit_open(const struct conf *c, struct buf *err);
/* Where callbacks of records appended from one event loop run. Create one
 * per loop; stop it (closing its handle) before that loop ends. The audit
 * frees it in audit_close. */
struct audit_sink *audit_sink_new(struct audit *a, uv_loop_t *loop);
void audit_sink_stop(struct audit_sink *s);
/* Drains the queue (running the callbacks of records that were waiting,
 * which may add records), writes the stop record with stop_reason ("" for
 * none, NULL for no stop record), joins the writer, closes the file and
 * frees everything. Call after every loop ended. */
void audit_close(struct audit *a, const char *stop_reason);
/* Takes the instance name of system records from conf c from now on. */
void audit_set_conf(struct audit *a, const struct conf *c);

/* Appends a record. cb (may be NULL) runs on sink's loop when the record
 * is durable or failed. Returns 0, or -1 when the record was not queued
 * (trail faulted and queue full, or out of memory); cb is then not
 * called. Safe from any thread. */
int audit_record(struct audit *a, struct audit_sink *sink,
    const struct audit_event *ev, audit_cb cb, void *arg);
/* A system record: event "start", "stop", "reload", ... with optional
 * string detail fields (name/value pairs, NULL-terminated). */
int audit_system(struct audit *a, const char *event, ...);
/* 1 while the trail can be written. */
int audit_writable(struct audit *a);
/* Asks the writer to reopen the file (SIGUSR1, after logrotate). */
void audit_reopen(struct audit *a);
/* Counters for metrics. */
unsigned long long audit_records_total(struct audit *a);
unsigned long long audit_failures_total(struct audit *a);

/* Checks files as one chain. Prints a summary or the first broken line on
 * out. Returns 0 if intact. keyfile: NULL for plain SHA-256. */
int audit_verify(char **files, int nfiles, const char *keyfile);

/* 1 if a parameter of this name is recorded redacted. */
int audit_redacted_name(const struct conf *c, const char *base);

#endif
