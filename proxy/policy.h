/* policy.h - deny-by-default decisions over (client, call). Pure.
 *
 * The daemon and the policy tools (policy_tool.c) decide through this one
 * module: a client's allow, its candidate (SPEC section 12, tried in
 * shadow), and replays of recorded calls whose redacted values cannot be
 * decided. */
#ifndef WHMGATE_POLICY_H
#define WHMGATE_POLICY_H

struct client;
struct call;

struct decision {
	int allow;
	const char *rule;     /* JSON path of the deciding allow entry or constraint */
	int status;           /* 403 when denied */
	const char *code;     /* function_not_allowed / parameter_not_allowed */
	char reason[256];
	int unknown;          /* policy_replay: the answer hangs on a value it
	                       * cannot see (allow is then 0) */
};

/* Which of a client's policies to decide with. */
enum policy_which { POLICY_ALLOW, POLICY_CANDIDATE };

/* Decides whether cl may make call c (already through call_parse). Returns
 * 0 when allowed; -1 with d filled when denied. */
int policy_check(const struct client *cl, const struct call *c,
    struct decision *d);

/* The same under the client's candidate. Returns 0 allowed, -1 denied,
 * and 1 (d zeroed) when the client has no candidate. */
int policy_check_candidate(const struct client *cl, const struct call *c,
    struct decision *d);

/* 1 if two decisions differ: one lets the call through, the other not
 * (or one cannot be decided). */
int policy_differs(const struct decision *a, const struct decision *b);

/* For replays of recorded calls: unknown(value) says that a value was
 * recorded redacted. A constraint that would read such a value cannot be
 * decided: when nothing else refuses the call, d->unknown is set and the
 * call counts as not allowed (return -1, code "unknown"). Returns as
 * policy_check; 1 when which is POLICY_CANDIDATE and there is none. */
int policy_check_ex(const struct client *cl, enum policy_which which,
    const struct call *c, int (*unknown)(const char *value),
    struct decision *d);

#endif
