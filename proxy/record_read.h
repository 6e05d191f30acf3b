/* record_read.h - audit records read back (SPEC section 12): one JSON line
 * of the trail to the fields the policy tools use, and the call it
 * recorded rebuilt through params.c's rules, so a replay decides it the way
 * the daemon did. Pure: no files, no config. Every byte is hostile: a line
 * that is not a record whmgate writes is an error with a reason, never a
 * crash nor a half-read call. */
#ifndef WHMGATE_RECORD_READ_H
#define WHMGATE_RECORD_READ_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

struct arena;
struct call;
struct params_limits;

struct record {
	yajl_val root;           /* owned: record_fini frees it */
	const char *type;        /* "request", "response", "deny", "system" */
	const char *id;          /* NULL on system records */
	const char *ts;
	long long seq;           /* -1 when absent */
	const char *client;      /* client.id, or NULL */
	const char *function;    /* whm.function, or NULL */
	int has_call;            /* whm.params present: a call was parsed */
	int decision;            /* decision.allow: 1, 0, -1 absent */
	const char *code;        /* decision.code, or NULL */
	int result;              /* whm.result: 1, 0, -1 absent or null */
	int cand;                /* decision.candidate present */
};

/* Parses one line (no newline needed; need not be NUL-terminated). Returns
 * 0, or -1 with a reason in err (the record is then empty). */
int record_parse(const char *line, size_t len, struct record *r, char *err,
    size_t errlen);
void record_fini(struct record *r);

/* 1 if a deny record's code is a policy refusal (403 of section 4). */
int record_policy_refusal(const char *code);

/* Rebuilds the call of a request or deny record that has one: the
 * recorded parameters (batch sub-calls from whm.calls) encoded and parsed
 * again by params_parse_limited/call_parse_limited with lim. Strings live
 * in a. Returns 0, or -1 with *why. */
int record_call(const struct record *r, struct arena *a,
    const struct params_limits *lim, struct call *c, const char **why);

/* 1 if a recorded value stands for one whmgate did not record ("[REDACTED]",
 * "hmac-sha256:<64 hex>"). */
int record_redacted(const char *v);
/* 1 if the call holds a name recorded redacted ("[REDACTED-NAME-N]"). */
int record_call_redacted_name(const struct call *c);

#endif
