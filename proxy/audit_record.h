/* audit_record.h - what an audit line says (SPEC section 7): the
 * record's JSON with redaction applied (the rules: audit_redact.h), its
 * bound, the chain hash; without a file, a thread or a loop.
 *
 * audit.c builds every record with these and hands the bytes to its
 * writer; audit_verify.c and audit.c share the chain hash and the key
 * reader. Pure apart from the clock (ts) and audit_key_read's file. */
#ifndef WHMGATE_AUDIT_RECORD_H
#define WHMGATE_AUDIT_RECORD_H

#include <stdarg.h>
#include <stddef.h>

#include "audit_redact.h"

/* The bound on a record (SPEC section 7): a line, its newline included,
 * never exceeds AUDIT_RECORD_MAX bytes. One string (a name, a value, a
 * reason) is recorded with at most AUDIT_STRING_MAX of its bytes, less
 * when the record is near its bound; a cut string ends with
 * "[cut by whmgate: N bytes in all]". Parameters and batch sub-calls
 * past AUDIT_RECORD_SOFT bytes are left out. Whatever was cut or left
 * out is counted in the record's "cut" field:
 * {"strings", "bytes", "params", "calls"}. */
#define AUDIT_RECORD_MAX (1024u * 1024u)
#define AUDIT_RECORD_SOFT (768u * 1024u)
#define AUDIT_RECORD_RESERVE 4096u       /* seq, prev, cut and the closing */
#define AUDIT_STRING_MAX 8192u

struct conf;
struct call;
struct outcome;
struct buf;

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

/* The audit.hmac_key_file contents (p NULL: plain SHA-256 and
 * "[REDACTED]"). */
struct audit_key {
	unsigned char *p;
	size_t len;
};

/* Reads a key file into k (trailing CR/LF dropped). Returns 0, or -1
 * with a message in err. Free with audit_key_fini (wipes it). */
int audit_key_read(struct audit_key *k, const char *file, struct buf *err);
void audit_key_fini(struct audit_key *k);

/* The chain's hash of n bytes: SHA-256, or HMAC-SHA256 under k. */
void audit_hash(const struct audit_key *k, const void *p, size_t n,
    unsigned char out[32]);

/* A record generator; reuse one for many records on one thread. */
struct audit_gen;
struct audit_gen *audit_gen_new(void);
void audit_gen_free(struct audit_gen *gn);   /* NULL: no-op */

/* Builds ev's record into gn: the JSON object without its closing brace
 * (the writer adds ,"seq":N,"prev":"<hex>"}). Returns 0, or -1 when the
 * record could not be built (out of memory). The bytes stay gn's until
 * its next build: audit_gen_bytes. */
int audit_gen_event(struct audit_gen *gn, const struct audit_key *k,
    const struct audit_event *ev);
/* A system record: instance, event and name/value string pairs from ap
 * (NULL-terminated; a NULL value is written as null). */
int audit_gen_system(struct audit_gen *gn, const char *instance,
    const char *event, va_list ap);
const char *audit_gen_bytes(const struct audit_gen *gn, size_t *len);


#endif
