/* policy.c - see policy.h.
 *
 * A call is allowed only if the client's allow names it and every
 * constraint holds; a batch only if 'batch' is allowed and every sub-call
 * is allowed with its own parameters; cpanel and uapi_cpanel per target.
 * enum and pattern hold for the plain name and every -N copy, since WHM
 * reads list parameters from all of them. "allow": "any" (section 12)
 * allows every entry; the structural refusal of a nested batch stays. */
#include "policy.h"
#include "conf.h"
#include "params.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One policy of a client: its allow or its candidate. */
struct rset {
	const struct client *cl;
	const struct allow_rule *(*find)(const struct client *, const char *);
	int any;
	const char *path;
	int (*unknown)(const char *);
	int saw_unknown;
};

static int deny(struct decision *d, const char *code, const char *rule,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
deny(struct decision *d, const char *code, const char *rule, const char *fmt,
    ...)
{
	va_list ap;

	d->allow = 0;
	d->status = 403;
	d->code = code;
	d->rule = rule;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	return -1;
}

/* 1 ok, 0 refused, 2 cannot be decided (a redacted value in a replay). */
static int
value_ok(struct rset *s, const struct constraint *co, const char *v)
{
	size_t i;

	if (!co->has_enum && !co->has_pattern)
		return 1;
	if (s->unknown && s->unknown(v))
		return 2;
	if (co->has_enum) {
		for (i = 0; i < co->nenums; i++)
			if (strcmp(co->enums[i], v) == 0)
				break;
		if (i == co->nenums)
			return 0;
	}
	if (co->has_pattern && regexec(&co->re, v, 0, NULL, 0) != 0)
		return 0;
	return 1;
}

static int
check_rule(struct rset *s, const struct allow_rule *r,
    const struct params *ps, struct decision *d)
{
	const struct constraint *co;
	size_t i, k;
	int ok;

	for (i = 0; i < r->ncons; i++) {
		co = &r->cons[i];
		if (co->required && params_count(ps, co->param, 1) == 0)
			return deny(d, "parameter_not_allowed", co->path,
			    "parameter %s is required", co->param);
		if (co->absent && params_count(ps, co->param, 0) > 0)
			return deny(d, "parameter_not_allowed", co->path,
			    "parameter %s is not allowed", co->param);
		for (k = 0; k < ps->n; k++) {
			if (strcmp(ps->v[k].base, co->param) != 0)
				continue;
			ok = value_ok(s, co, ps->v[k].value);
			if (ok == 0)
				return deny(d, "parameter_not_allowed", co->path,
				    "value of %s is not allowed", ps->v[k].name);
			if (ok == 2)
				s->saw_unknown = 1;
		}
	}
	return 0;
}

/* cpanel runs as cpanel_jsonapi_user, or as 'user' when that is absent:
 * a value constraint written for cpanel_jsonapi_user holds for the user
 * the call really runs as, whichever name carried it. */
static int
check_cpanel_user(struct rset *s, const struct allow_rule *r,
    const struct params *ps, const char *cuser, struct decision *d)
{
	size_t i;
	int ok;

	if (cuser == NULL || params_count(ps, "cpanel_jsonapi_user", 0) > 0)
		return 0;
	for (i = 0; i < r->ncons; i++) {
		if (strcmp(r->cons[i].param, "cpanel_jsonapi_user") != 0)
			continue;
		ok = value_ok(s, &r->cons[i], cuser);
		if (ok == 0)
			return deny(d, "parameter_not_allowed", r->cons[i].path,
			    "%s", "the cPanel user is not allowed");
		if (ok == 2)
			s->saw_unknown = 1;
	}
	return 0;
}

static int
check_one(struct rset *s, const char *name, const struct params *ps,
    const char *cuser, struct decision *d)
{
	const struct allow_rule *r;

	if (s->any) {
		d->rule = s->path;
		return 0;
	}
	if ((r = s->find(s->cl, name)) == NULL)
		return deny(d, "function_not_allowed", NULL,
		    "%s is not allowed for this client", name);
	d->rule = r->path;
	if (check_rule(s, r, ps, d) == -1)
		return -1;
	return strncmp(name, "cpanel:", 7) == 0 ?
	    check_cpanel_user(s, r, ps, cuser, d) : 0;
}

static int
check_set(struct rset *s, const struct call *c, struct decision *d)
{
	const struct allow_rule *batch;
	size_t i;

	memset(d, 0, sizeof(*d));
	if (check_one(s, c->rule_name, &c->params, c->cuser, d) == -1)
		return -1;
	batch = s->any ? NULL : s->find(s->cl, "batch");
	for (i = 0; i < c->nsubs; i++) {
		if (strcmp(c->subs[i].function, "batch") == 0)
			return deny(d, "function_not_allowed",
			    batch ? batch->path : s->path,
			    "%s", "nested batch is not allowed");
		if (check_one(s, c->subs[i].rule_name, &c->subs[i].params,
		    c->subs[i].cuser, d) == -1)
			return -1;
	}
	d->rule = s->any ? s->path : s->find(s->cl, c->rule_name)->path;
	if (s->saw_unknown) {
		/* Never allowed on a value nobody can see. */
		d->unknown = 1;
		d->code = "unknown";
		snprintf(d->reason, sizeof(d->reason), "%s",
		    "a rule reads a value that was recorded redacted");
		return -1;
	}
	d->allow = 1;
	return 0;
}

int
policy_check_ex(const struct client *cl, enum policy_which which,
    const struct call *c, int (*unknown)(const char *value),
    struct decision *d)
{
	struct rset s;

	memset(&s, 0, sizeof(s));
	s.cl = cl;
	s.unknown = unknown;
	if (which == POLICY_CANDIDATE) {
		if (!cl->has_candidate) {
			memset(d, 0, sizeof(*d));
			return 1;
		}
		s.find = conf_candidate;
		s.any = cl->cand_any;
		s.path = cl->cand_path;
	} else {
		s.find = conf_allow;
		s.any = cl->allow_any;
		s.path = cl->allow_path;
	}
	return check_set(&s, c, d);
}

int
policy_check(const struct client *cl, const struct call *c, struct decision *d)
{
	return policy_check_ex(cl, POLICY_ALLOW, c, NULL, d);
}

int
policy_check_candidate(const struct client *cl, const struct call *c,
    struct decision *d)
{
	return policy_check_ex(cl, POLICY_CANDIDATE, c, NULL, d);
}

int
policy_differs(const struct decision *a, const struct decision *b)
{
	/* Two refusals for different reasons are the same decision: the
	 * call does not go through either way. */
	return a->allow != b->allow || a->unknown != b->unknown;
}
