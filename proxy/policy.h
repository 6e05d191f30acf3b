/* policy.h - deny-by-default decisions over (client, call). Pure. */
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
};

/* Decides whether cl may make call c (already through call_parse). Returns
 * 0 when allowed; -1 with d filled when denied. */
int policy_check(const struct client *cl, const struct call *c,
    struct decision *d);

#endif
