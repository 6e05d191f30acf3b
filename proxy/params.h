/* params.h - WHM parameters: form/query decoding, the meta-call structure
 * (batch sub-calls, cpanel/uapi_cpanel targets) and the rebuilt encoding.
 * Pure: no sockets, no config. All strings live in the caller's arena.
 * SPEC section 4 gives the rules; every refusal here is a 400, except
 * going past a count limit (struct params_limits), which is a 413.
 * Costs are linear in the input (duplicates are found by sorting, never
 * by comparing every pair) and memory is a small multiple of it. */
#ifndef WHMGATE_PARAMS_H
#define WHMGATE_PARAMS_H

#include <stddef.h>

#include "util.h"

struct param {
	char *name;      /* decoded, as sent: "user", "user-2" */
	char *base;      /* without a -N suffix: "user" */
	char *value;     /* decoded */
	int indexed;     /* 1 if the name had a -N suffix */
};

struct params {
	struct param *v;
	size_t n, cap;
};

enum call_kind { CALL_PLAIN, CALL_BATCH, CALL_CPANEL, CALL_UAPI };

/* One batch sub-call. */
struct subcall {
	char *function;
	const char *rule_name;     /* fn, or cpanel:M::f for a cpanel sub-call */
	const char *cuser;         /* a cpanel sub-call's effective user */
	struct params params;
};

/* A call as whmgate understands it, after all 400-class checks. */
struct call {
	enum call_kind kind;
	const char *function;      /* outer function */
	struct params params;      /* outer parameters as received */
	struct subcall *subs;      /* CALL_BATCH, in WHM's order */
	size_t nsubs;
	const char *module, *func, *cuser;  /* CALL_CPANEL / CALL_UAPI */
	const char *rule_name;     /* the allow entry: fn or cpanel:M::f */
	int add_api_version;       /* api.version absent: whmgate adds it */
};

/* Work bounds of one request (limits.max_params, limits.max_batch_calls). */
struct params_limits {
	size_t max_params;       /* name=value pairs in all: query, body and
	                          * every batch sub-call's arguments */
	size_t max_batch_calls;  /* sub-calls of one batch */
};

#define PARAMS_MAX_DEFAULT 1024
#define PARAMS_BATCH_MAX_DEFAULT 64
extern const struct params_limits params_limits_default;

/* Decodes "a=b&c=d" (query or form body) and appends to ps. The pieces are
 * counted before any is decoded: when ps would then hold more than
 * lim->max_params, nothing is added. Returns 0, or -1 with *why and
 * *status: 413 for a count over the limit, else 400. */
int params_parse_limited(struct arena *a, struct params *ps, const char *s,
    size_t len, const struct params_limits *lim, int *status,
    const char **why);
/* params_parse_limited with the default limits, for tools and tests that
 * need not tell a 413 from a 400. Returns 0, or -1 with *why. */
int params_parse(struct arena *a, struct params *ps, const char *s, size_t len,
    const char **why);
/* Number of params whose base name is name; with plain_only, only those
 * sent without a -N suffix. */
size_t params_count(const struct params *ps, const char *base, int plain_only);
/* The value of the plain (unsuffixed) name, or NULL. */
const char *params_get(const struct params *ps, const char *name);

/* Checks a body for the bytes WHM would read differently (raw CR, LF, NUL).
 * Returns 0 or -1. */
int params_body_ok(const char *body, size_t len);

/* Builds a call from the function and its merged parameters: duplicate
 * names, api.version, cpanel_xmlapi_* spellings, batch and cpanel
 * structure. The counts come first: a batch of more than
 * lim->max_batch_calls sub-calls, or a call whose parameters (c->params
 * and every sub-call's arguments) number more than lim->max_params, is
 * refused before any sub-call is decoded. Returns 0, or -1 with *why and
 * *status (413 for a count, else 400). */
int call_parse_limited(struct arena *a, struct call *c, const char *function,
    const struct params_limits *lim, int *status, const char **why);
/* call_parse_limited with the default limits. Returns 0, or -1 with *why. */
int call_parse(struct arena *a, struct call *c, const char *function,
    const char **why);

/* The rebuilt form encoding of what whmgate forwards: the outer parameters
 * (batch commands re-encoded as command-0, command-1, ...), api.version=1
 * added when absent. Appends to out. */
int call_encode(const struct call *c, struct buf *out);

/* Appends the application/x-www-form-urlencoded form of s. */
int form_escape(struct buf *out, const char *s);

/* Length of the base name: "user-12" -> 4 with *indexed 1; without a -N
 * suffix, strlen with *indexed 0. */
size_t params_base_len(const char *name, int *indexed);

/* 1 if s is a function name: ^[a-z0-9_]+$ */
int params_valid_function(const char *s);

#endif
